// Package onebox holds the files the server embeds: the agent web app
// (pwa/), its manifest and its assets. Only the module root can embed
// these folders, so this tiny package exists for that alone.
package onebox

import (
	"embed"
	"io/fs"
)

//go:embed manifest.json pwa assets
var files embed.FS

// WebApp returns the app's files with index.html, sw.js and manifest.json
// at the root, as the browser expects to find them.
func WebApp() fs.FS { return webFS{} }

// webFS lays pwa/ at the root and keeps manifest.json and assets/ beside it.
type webFS struct{}

func (webFS) Open(name string) (fs.File, error) {
	if name == "manifest.json" || name == "assets" || len(name) > 7 && name[:7] == "assets/" {
		return files.Open(name)
	}
	if name == "." {
		return files.Open("pwa")
	}
	return files.Open("pwa/" + name)
}
