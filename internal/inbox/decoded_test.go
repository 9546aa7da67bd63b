package inbox_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/onebox/onebox/internal/inbox"
)

// TestDecodedRecordsMatchTheStore runs a conversation through what agents
// and customers do to it and checks, after every step, that the service's
// cache of decoded records holds exactly what decoding the stored bytes
// gives, and that reading through the cache and reading afresh agree.
func TestDecodedRecordsMatchTheStore(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	checked := 0
	step := func(name string) {
		t.Helper()
		n, err := f.svc.CheckDecodedConversations()
		if err != nil {
			t.Fatalf("after %s: %v", name, err)
		}
		checked += n
	}
	read := func(name, id string) {
		t.Helper()
		cached := f.conversation(t, id)
		f.svc.ForgetDecoded()
		fresh := f.conversation(t, id)
		if !reflect.DeepEqual(cached, fresh) {
			t.Fatalf("after %s: through the cache\n%+v\nafresh\n%+v", name, cached, fresh)
		}
		f.conversation(t, id) // remembered again, from the read path
		step(name + " (read back)")
	}

	conv := f.receive(t, "+15550101", "a", "hello").Message.ConversationID
	step("first message")
	got, err := f.svc.Receive(ctx, f.channel.ID, []inbox.Inbound{{ExternalID: "b", ContactHandle: "+15550101", ContactName: "Customer +15550101",
		Kind: "image", Media: &inbox.Media{ID: uuid.NewString(), Mime: "image/jpeg", Size: 2048, Name: "photo.jpg"}}})
	if err != nil || got[0].Message.ConversationID != conv {
		t.Fatalf("media message: %+v %v", got, err)
	}
	step("inbound media")
	read("inbound media", conv)

	img := f.addMedia(t, f.admin.Tenant.ID, "image/png")
	d := draft("TEA-1", "Green tea", 1500, "EUR")
	d.ImageSet, d.ImageMediaID = true, &img.ID
	p, err := f.svc.CreateProduct(ctx, f.admin, d)
	if err != nil {
		t.Fatal(err)
	}
	drafts := map[string]inbox.Draft{
		"reply":         {Text: "Let me check"},
		"note":          {Text: "VIP", Private: true},
		"product":       {ProductID: p.ID, Text: "This one"},
		"media note":    {MediaID: f.addMedia(t, f.admin.Tenant.ID, "image/png").ID, Private: true},
		"media reply":   {MediaID: f.addMedia(t, f.admin.Tenant.ID, "application/pdf").ID},
		"plain reply 2": {Text: "Anything else?"},
	}
	for name, dr := range drafts {
		dr.ClientID = uuid.NewString()
		if _, _, err := f.svc.SendMessage(ctx, f.agent, conv, dr); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		step(name)
		read(name, conv)
	}

	due, _, err := f.svc.Due(ctx, f.now, 10)
	if err != nil || len(due) == 0 {
		t.Fatalf("outbox: %d items, %v", len(due), err)
	}
	for i, o := range due {
		if err := f.svc.SendResult(ctx, o.Item, "ext-"+o.Message.ID, nil); err != nil {
			t.Fatalf("send result %d: %v", i, err)
		}
		if err := f.svc.ReportStatus(ctx, f.channel.ID, []inbox.StatusReport{{ExternalID: "ext-" + o.Message.ID, Status: inbox.MsgDelivered}}); err != nil {
			t.Fatal(err)
		}
	}
	step("delivery")
	read("delivery", conv)

	agentID := f.agent.Agent.ID
	labels := []string{"billing", "vip"}
	until := f.now.Add(time.Hour)
	resolved := inbox.StatusResolved
	patches := map[string]inbox.Patch{
		"assign":   {AssigneeSet: true, AssigneeID: &agentID},
		"labels":   {Labels: &labels},
		"snooze":   {SnoozedSet: true, SnoozedUntil: &until},
		"unassign": {AssigneeSet: true},
		"resolve":  {Status: &resolved},
	}
	for _, name := range []string{"assign", "labels", "snooze", "unassign", "resolve"} {
		f.advance(time.Minute)
		if _, err := f.svc.UpdateConversation(ctx, f.agent, conv, patches[name]); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		step(name)
		read(name, conv)
	}
	f.receive(t, "+15550101", "c", "one more thing") // reopens
	step("reopen")
	if err := f.svc.MarkRead(ctx, f.agent, conv); err != nil {
		t.Fatal(err)
	}
	step("read")
	read("read", conv)
	if checked == 0 {
		t.Fatal("nothing was ever remembered: the cache is not in use")
	}
}

// TestErasureForgetsDecodedRecords: an erased customer's details do not
// stay in the memory of the process that erased them.
func TestErasureForgetsDecodedRecords(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	const name = "Erin Erasable"
	got, err := f.svc.Receive(ctx, f.channel.ID, []inbox.Inbound{{ExternalID: "a", ContactHandle: "+15550199", ContactName: name, Text: "hi"}})
	if err != nil {
		t.Fatal(err)
	}
	f.receive(t, "+15550198", "b", "someone else")
	f.receive(t, "+15550199", "c", "me again") // reads the contact and conversation back
	if f.svc.DecodedMentioning(name) == 0 {
		t.Fatal("the customer's records were never remembered; the test proves nothing")
	}
	conv := f.conversation(t, got[0].Message.ConversationID)
	job, err := f.svc.EraseContact(ctx, f.admin, conv.Contact.ID)
	if err != nil {
		t.Fatal(err)
	}
	for job.Phase != inbox.PhaseMedia && job.Phase != inbox.PhaseCompact && job.Phase != inbox.PhaseDone {
		if job, err = f.svc.EraseStep(ctx, job.Code); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.svc.DecodedMentioning(name); n != 0 {
		t.Fatalf("%d remembered records still hold the erased customer's name", n)
	}
}
