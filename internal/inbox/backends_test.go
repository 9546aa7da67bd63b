package inbox_test

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/onebox/onebox/internal/bolt"
	"github.com/onebox/onebox/internal/inbox"
	"github.com/onebox/onebox/internal/pgtest"
	"github.com/onebox/onebox/internal/postgres"
)

// The service's acceptance tests run on every store: as themselves on
// bbolt, and again as subtests of TestPostgres on PostgreSQL. Their
// fixtures open the store with openStore, which picks the backend from the
// test's name, so the tests' bodies do not change.

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

const postgresPrefix = "TestPostgres/"

// openStore opens an empty store for t, closed when t ends: PostgreSQL
// under TestPostgres, bbolt otherwise.
func openStore(t *testing.T, pub inbox.Publisher) inbox.Store {
	t.Helper()
	var (
		store inbox.Store
		err   error
	)
	if strings.HasPrefix(t.Name(), postgresPrefix) {
		store, err = postgres.Open(context.Background(), pgtest.DSN(t), postgres.Options{Publisher: pub, Logger: slog.New(slog.DiscardHandler)})
	} else {
		store, err = bolt.Open(filepath.Join(t.TempDir(), "onebox.db"), bolt.Options{Publisher: pub})
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return store
}

// onBothStores lists the tests that build their service with newFixture or
// newChanFixture; TestEveryFixtureTestRunsOnPostgres keeps it complete.
var onBothStores = map[string]func(*testing.T){
	"TestCatalogLifecycle":                                      TestCatalogLifecycle,
	"TestSKUIsUniquePerTenant":                                  TestSKUIsUniquePerTenant,
	"TestProductImageMustBeTheTenantsImage":                     TestProductImageMustBeTheTenantsImage,
	"TestListProducts":                                          TestListProducts,
	"TestProductMessageKeepsItsSnapshot":                        TestProductMessageKeepsItsSnapshot,
	"TestSendMedia":                                             TestSendMedia,
	"TestMediaURLsAreSignedWhenShown":                           TestMediaURLsAreSignedWhenShown,
	"TestImportProducts":                                        TestImportProducts,
	"TestMediaRecordsAndCleanupList":                            TestMediaRecordsAndCleanupList,
	"TestMediaURLKeyIsStable":                                   TestMediaURLKeyIsStable,
	"TestVAPIDKeysGeneratorFailure":                             TestVAPIDKeysGeneratorFailure,
	"TestPlanPushWithoutDevices":                                TestPlanPushWithoutDevices,
	"TestRetentionPurgesExactlyWhatIsOlder":                     TestRetentionPurgesExactlyWhatIsOlder,
	"TestAccessDataIsKeptThirtyDays":                            TestAccessDataIsKeptThirtyDays,
	"TestReceiveDeduplicatesAndThreads":                         TestReceiveDeduplicatesAndThreads,
	"TestInboundReopensResolvedAndSnoozed":                      TestInboundReopensResolvedAndSnoozed,
	"TestSnoozeWakesAtItsTime":                                  TestSnoozeWakesAtItsTime,
	"TestSendMessageIsIdempotent":                               TestSendMessageIsIdempotent,
	"TestStatusOnlyMovesForward":                                TestStatusOnlyMovesForward,
	"TestRevokedKeyEndsSessions":                                TestRevokedKeyEndsSessions,
	"TestSignInAuthenticateSignOut":                             TestSignInAuthenticateSignOut,
	"TestDeactivateUnassignsAndLocksOut":                        TestDeactivateUnassignsAndLocksOut,
	"TestTenantsAreIsolated":                                    TestTenantsAreIsolated,
	"TestListFiltersAndPages":                                   TestListFiltersAndPages,
	"TestEventLogHasNoGaps":                                     TestEventLogHasNoGaps,
	"TestStatusBeforeSendResultIsApplied":                       TestStatusBeforeSendResultIsApplied,
	"TestFailedNeverFollowsDeliveredAndDuplicatesChangeNothing": TestFailedNeverFollowsDeliveredAndDuplicatesChangeNothing,
	"TestFailedStatusKeepsProviderError":                        TestFailedStatusKeepsProviderError,
	"TestUnknownStatusIsDroppedAfterADay":                       TestUnknownStatusIsDroppedAfterADay,
	"TestReadUpToMarksEarlierReplies":                           TestReadUpToMarksEarlierReplies,
	"TestEchoesAreStoredOnceAndAppSendsAppear":                  TestEchoesAreStoredOnceAndAppSendsAppear,
	"TestEchoOvertakingTheSendIsMatched":                        TestEchoOvertakingTheSendIsMatched,
	"TestReplyWindowAndLength":                                  TestReplyWindowAndLength,
	"TestMarkReadQueuesAReadReceipt":                            TestMarkReadQueuesAReadReceipt,
	"TestTemporaryFailuresRetryForADayThenFail":                 TestTemporaryFailuresRetryForADayThenFail,
	"TestDeferredSendIsNotAnAttempt":                            TestDeferredSendIsNotAnAttempt,
	"TestBeginSendMarksUncertainAfterACrash":                    TestBeginSendMarksUncertainAfterACrash,
	"TestDecodedRecordsMatchTheStore":                           TestDecodedRecordsMatchTheStore,
	"TestErasureForgetsDecodedRecords":                          TestErasureForgetsDecodedRecords,
}

// TestPostgres runs the service's acceptance tests on PostgreSQL.
func TestPostgres(t *testing.T) {
	names := make([]string, 0, len(onBothStores))
	for name := range onBothStores {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		t.Run(name, onBothStores[name])
	}
}

// TestEveryFixtureTestRunsOnPostgres fails when a test that builds its
// service with a fixture is missing from onBothStores.
func TestEveryFixtureTestRunsOnPostgres(t *testing.T) {
	files, err := filepath.Glob("*_test.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, file := range files {
		f, err := parser.ParseFile(fset, file, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Recv != nil || !strings.HasPrefix(fn.Name.Name, "Test") || fn.Body == nil {
				continue
			}
			usesFixture := false
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				if call, ok := n.(*ast.CallExpr); ok {
					if id, ok := call.Fun.(*ast.Ident); ok && (id.Name == "newFixture" || id.Name == "newChanFixture") {
						usesFixture = true
					}
				}
				return !usesFixture
			})
			if _, listed := onBothStores[fn.Name.Name]; usesFixture && !listed {
				t.Errorf("%s (%s) uses a fixture but does not run on PostgreSQL: add it to onBothStores", fn.Name.Name, file)
			}
		}
	}
}
