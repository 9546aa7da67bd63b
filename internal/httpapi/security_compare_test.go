package httpapi

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// secretName matches the names of values that hold or derive from a
// secret: comparing one with == or bytes.Equal takes time that depends on
// how much of a guess is right.
var secretName = regexp.MustCompile(`(?i)(token|secret|signature|^sig$|mac$|hash|apikey|password|accesskey)`)

// comparedOnPurpose are the plain comparisons of secret-sounding values
// that are not secrets an outsider can probe, by file and comparison.
var comparedOnPurpose = map[string]string{
	"internal/httpapi/websocket.go: strings.EqualFold token": "a header keyword (Connection: upgrade), not a credential",
	"internal/inbox/live.go: SessionHash == Hash":            "two stored session hashes: the caller's token was already looked up by its hash",
	"internal/inbox/push.go: SessionHash == Hash":            "two stored session hashes, selecting a session's devices",
	"internal/media/sniff.go:  == sig":                       "a file format's magic bytes",
}

// TestSecretsAreComparedInConstantTime walks the product's Go source and
// fails on any == / != / bytes.Equal / strings.EqualFold on a value whose
// name says it is a token, secret, signature, MAC or hash, unless listed
// above with the reason it is safe. Credentials are compared with
// crypto/subtle or hmac.Equal, or looked up by their SHA-256.
func TestSecretsAreComparedInConstantTime(t *testing.T) {
	fset := token.NewFileSet()
	seen := map[string]bool{}
	for _, root := range []string{"..", "../../server"} {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			f, err := parser.ParseFile(fset, path, nil, 0)
			if err != nil {
				return err
			}
			rel := filepath.ToSlash(path)
			rel = strings.TrimPrefix(rel, "../../")
			if !strings.HasPrefix(rel, "server/") {
				rel = "internal/" + strings.TrimPrefix(rel, "../")
			}
			ast.Inspect(f, func(n ast.Node) bool {
				what := ""
				switch x := n.(type) {
				case *ast.BinaryExpr:
					if (x.Op == token.EQL || x.Op == token.NEQ) && !plainOperand(x.X) && !plainOperand(x.Y) {
						a, b := exprName(x.X), exprName(x.Y)
						if secretName.MatchString(a) || secretName.MatchString(b) {
							what = a + " " + x.Op.String() + " " + b
						}
					}
				case *ast.CallExpr:
					sel, ok := x.Fun.(*ast.SelectorExpr)
					if !ok {
						break
					}
					pkg, ok := sel.X.(*ast.Ident)
					if !ok || (pkg.Name != "bytes" && pkg.Name != "strings") || (sel.Sel.Name != "Equal" && sel.Sel.Name != "EqualFold" && sel.Sel.Name != "Compare") {
						break
					}
					for _, a := range x.Args {
						if name := exprName(a); secretName.MatchString(name) {
							what = pkg.Name + "." + sel.Sel.Name + " " + name
						}
					}
				}
				if what == "" {
					return true
				}
				key := rel + ": " + what
				seen[key] = true
				if _, ok := comparedOnPurpose[key]; !ok {
					t.Errorf("%s: %s compares a secret-looking value in variable time; use crypto/subtle or hmac.Equal (or list it in comparedOnPurpose with why it is safe)", fset.Position(n.Pos()), what)
				}
				return true
			})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for key := range comparedOnPurpose {
		if !seen[key] {
			t.Errorf("comparedOnPurpose lists %q, which no longer exists: remove it", key)
		}
	}
}

// exprName is the name a comparison operand goes by: x, a.x, x.String(),
// string(x).
func exprName(e ast.Expr) string {
	switch x := e.(type) {
	case *ast.Ident:
		return x.Name
	case *ast.SelectorExpr:
		return x.Sel.Name
	case *ast.CallExpr:
		if sel, ok := x.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "String" {
			return exprName(sel.X)
		}
		if id, ok := x.Fun.(*ast.Ident); ok && id.Name == "string" && len(x.Args) == 1 {
			return exprName(x.Args[0])
		}
	}
	return ""
}

// plainOperand is a literal, nil, a boolean, a length or a size: comparing
// a secret with one of these reveals nothing of its content.
func plainOperand(e ast.Expr) bool {
	switch x := e.(type) {
	case *ast.BasicLit:
		return true
	case *ast.Ident:
		return x.Name == "nil" || x.Name == "true" || x.Name == "false" || strings.HasSuffix(x.Name, "Len") || strings.HasSuffix(x.Name, "Size")
	case *ast.SelectorExpr:
		return strings.HasSuffix(x.Sel.Name, "Len") || strings.HasSuffix(x.Sel.Name, "Size")
	case *ast.CallExpr:
		id, ok := x.Fun.(*ast.Ident)
		return ok && id.Name == "len"
	}
	return false
}
