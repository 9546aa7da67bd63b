package browsertest

import (
	"fmt"
	"testing"
	"time"
)

// TestListKeepsPosition: an agent has scrolled down the conversation list;
// a conversation from below jumps to the top and a new one arrives, both
// live. The rows the agent was reading stay where they were.
func TestListKeepsPosition(t *testing.T) {
	e := needBrowser(t)
	srv := startServer(t, e)
	tn := srv.newTenant("Busy Shop")
	const n = 40
	msgs := make([]map[string]string, n)
	for i := range msgs {
		msgs[i] = map[string]string{"external_id": fmt.Sprintf("pos-%d", i), "from": fmt.Sprintf("+49151000010%02d", i), "name": fmt.Sprintf("Customer %02d", i), "text": fmt.Sprintf("Question number %d", i)}
	}
	var r struct {
		Messages []struct {
			ConversationID string `json:"conversation_id"`
		}
	}
	srv.call("POST", "/api/v1/operator/inbound", operatorToken, map[string]any{"channel_id": tn.channelID, "messages": msgs}, &r, 201)

	ctx := tab(t, e, false)
	signInUI(t, ctx, srv.base, tn.adminKey)
	waitJS(t, ctx, fmt.Sprintf(`document.querySelectorAll("#conv-list li").length === %d && document.getElementById("conn").dataset.state === "connected"`, n), 10*time.Second)

	// Scroll so that the 15th row is at the top of the list.
	anchorID := eval[string](t, ctx, `(() => { const ul = document.getElementById("conv-list"); const li = ul.children[15]; ul.scrollTop += li.getBoundingClientRect().top - ul.getBoundingClientRect().top; return li.dataset.id; })()`)
	pos := fmt.Sprintf(`(() => { const ul = document.getElementById("conv-list"); return document.querySelector('#conv-list li[data-id="%s"]').getBoundingClientRect().top - ul.getBoundingClientRect().top; })()`, anchorID)
	before := eval[float64](t, ctx, pos)
	if eval[float64](t, ctx, `document.getElementById("conv-list").scrollTop`) <= 0 {
		t.Fatal("the list did not scroll; the test needs a longer list")
	}

	// The oldest conversation (bottom of the list) gets a new message, and
	// a new customer writes in.
	moved := r.Messages[0].ConversationID
	srv.call("POST", "/api/v1/operator/inbound", operatorToken, map[string]any{"channel_id": tn.channelID, "messages": []map[string]string{
		{"external_id": "pos-again", "from": msgs[0]["from"], "name": "Customer 00", "text": "Any news?"},
		{"external_id": "pos-new", "from": "+4915100001099", "name": "Newcomer", "text": "First time here"},
	}}, nil, 201)
	waitJS(t, ctx, fmt.Sprintf(`document.querySelectorAll("#conv-list li").length === %d && [...document.querySelectorAll("#conv-list li")].slice(0, 2).map(li => li.dataset.id).includes(%q)`, n+1, moved), 5*time.Second)
	after := eval[float64](t, ctx, pos)
	if d := after - before; d > 1 || d < -1 {
		t.Errorf("the row being read moved by %.1f px when updates arrived", d)
	}

	// The row at the top of the view itself jumps to the top of the list:
	// the rows under it stay.
	next := eval[string](t, ctx, fmt.Sprintf(`document.querySelector('#conv-list li[data-id="%s"]').nextElementSibling.dataset.id`, anchorID))
	posNext := fmt.Sprintf(`(() => { const ul = document.getElementById("conv-list"); return document.querySelector('#conv-list li[data-id="%s"]').getBoundingClientRect().top - ul.getBoundingClientRect().top; })()`, next)
	before = eval[float64](t, ctx, posNext)
	var from string
	for i, m := range r.Messages {
		if m.ConversationID == anchorID {
			from = msgs[i]["from"]
		}
	}
	srv.call("POST", "/api/v1/operator/inbound", operatorToken, map[string]any{"channel_id": tn.channelID, "messages": []map[string]string{
		{"external_id": "pos-top", "from": from, "text": "Hello again"},
	}}, nil, 201)
	waitJS(t, ctx, fmt.Sprintf(`document.querySelector("#conv-list li").dataset.id === %q`, anchorID), 5*time.Second)
	after = eval[float64](t, ctx, posNext)
	if d := after - before; d > 1 || d < -1 {
		t.Errorf("the rows under a conversation that jumped to the top moved by %.1f px", d)
	}
}
