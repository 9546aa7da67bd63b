package outbox

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/onebox/onebox/internal/bolt"
	"github.com/onebox/onebox/internal/inbox"
	"github.com/onebox/onebox/internal/pgtest"
	"github.com/onebox/onebox/internal/postgres"
)

// The worker's tests run on both stores: as themselves on bbolt, and again
// as subtests of TestPostgres on PostgreSQL, where "restart" reopens the
// same schema.

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

// openStore opens e's store: the same one each time it is called for e.
func openStore(t *testing.T, e *env, pub inbox.Publisher) (inbox.Store, error) {
	t.Helper()
	if !strings.HasPrefix(t.Name(), "TestPostgres/") {
		return bolt.Open(e.path, bolt.Options{Publisher: pub})
	}
	if e.dsn == "" {
		e.dsn = pgtest.DSN(t)
	}
	return postgres.Open(context.Background(), e.dsn, postgres.Options{Publisher: pub})
}

// TestPostgres runs the worker's tests on PostgreSQL.
func TestPostgres(t *testing.T) {
	for _, tc := range []struct {
		name string
		fn   func(*testing.T)
	}{
		{"TestSendsOnceAndRecordsExternalID", TestSendsOnceAndRecordsExternalID},
		{"TestTemporaryErrorIsRetriedAfterBackoff", TestTemporaryErrorIsRetriedAfterBackoff},
		{"TestPermanentErrorFailsMessage", TestPermanentErrorFailsMessage},
		{"TestPanickingSenderIsRetried", TestPanickingSenderIsRetried},
		{"TestSendTimeoutIsTemporary", TestSendTimeoutIsTemporary},
		{"TestPendingReplyIsSentAfterRestart", TestPendingReplyIsSentAfterRestart},
		{"TestDeletedChannelFailsMessage", TestDeletedChannelFailsMessage},
		{"TestChannelTypeWithoutSenderFailsMessage", TestChannelTypeWithoutSenderFailsMessage},
		{"TestManyMessagesEachSentOnceWithinConcurrency", TestManyMessagesEachSentOnceWithinConcurrency},
		{"TestRepliesOfOneConversationGoOutInOrder", TestRepliesOfOneConversationGoOutInOrder},
		{"TestRunWaitsForInflightSend", TestRunWaitsForInflightSend},
	} {
		t.Run(tc.name, tc.fn)
	}
}
