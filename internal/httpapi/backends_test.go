package httpapi

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

// The API's tests run on both stores: as themselves on bbolt, and again as
// subtests of TestPostgres on PostgreSQL. newHarness opens its store with
// openStore, which picks the backend from the test's name.

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

const postgresPrefix = "TestPostgres/"

// openStore opens an empty store for t: PostgreSQL under TestPostgres,
// bbolt otherwise. The harness closes it.
func openStore(t *testing.T, log *slog.Logger) (inbox.Store, error) {
	t.Helper()
	if strings.HasPrefix(t.Name(), postgresPrefix) {
		return postgres.Open(context.Background(), pgtest.DSN(t), postgres.Options{Logger: log})
	}
	return bolt.Open(filepath.Join(t.TempDir(), "onebox.db"), bolt.Options{Logger: log})
}

// onBolt lists the harness tests that only make sense on bbolt, with why.
var onBolt = map[string]string{}

// TestPostgres runs every test that builds a harness on PostgreSQL too.
func TestPostgres(t *testing.T) {
	names := harnessTests(t)
	for _, name := range names {
		if _, skip := onBolt[name]; skip {
			continue
		}
		fn, ok := harnessTestFuncs[name]
		if !ok {
			t.Errorf("%s builds a harness but is not in harnessTestFuncs: add it (or to onBolt, with why)", name)
			continue
		}
		t.Run(name, fn)
	}
}

// harnessTests finds the package's tests that call newHarness.
func harnessTests(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*_test.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var names []string
	for _, file := range files {
		f, err := parser.ParseFile(fset, file, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Recv != nil || !strings.HasPrefix(fn.Name.Name, "Test") || fn.Name.Name == "TestPostgres" || fn.Body == nil {
				continue
			}
			uses := false
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				if call, ok := n.(*ast.CallExpr); ok {
					if id, ok := call.Fun.(*ast.Ident); ok && id.Name == "newHarness" {
						uses = true
					}
				}
				return !uses
			})
			if uses {
				names = append(names, fn.Name.Name)
			}
		}
	}
	slices.Sort(names)
	return names
}
