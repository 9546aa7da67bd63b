// Command icongen draws the app's icons (assets/icon-192.png,
// assets/icon-512.png, assets/icon-maskable-512.png): a speech bubble on
// the brand colour. Run it from the module root after changing the design:
//
//	go run ./internal/browsertest/icongen
package main

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
)

// brand is the theme colour of manifest.json.
var brand = color.NRGBA{0x1f, 0x6f, 0xeb, 0xff}

func main() {
	out := "assets"
	if len(os.Args) > 1 {
		out = os.Args[1]
	}
	icons := []struct {
		name     string
		size     int
		maskable bool
	}{
		{"icon-192.png", 192, false},
		{"icon-512.png", 512, false},
		{"icon-maskable-512.png", 512, true},
	}
	for _, ic := range icons {
		if err := write(filepath.Join(out, ic.name), draw(ic.size, ic.maskable)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}

func write(name string, img image.Image) error {
	f, err := os.Create(name)
	if err != nil {
		return fmt.Errorf("create icon: %w", err)
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return fmt.Errorf("encode %s: %w", name, err)
	}
	return f.Close()
}

// draw renders the icon with 4x4 supersampling. A maskable icon fills its
// square (the platform cuts its own shape) and keeps the glyph inside the
// central safe circle; a plain icon has rounded corners of its own.
func draw(size int, maskable bool) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, size, size))
	const ss = 4
	scale := 1.0
	if maskable {
		scale = 0.8
	}
	for y := 0; y < size; y++ {
		for x := 0; x < size; x++ {
			var bg, fg, line float64
			for sy := 0; sy < ss; sy++ {
				for sx := 0; sx < ss; sx++ {
					u := (float64(x) + (float64(sx)+0.5)/ss) / float64(size)
					v := (float64(y) + (float64(sy)+0.5)/ss) / float64(size)
					if maskable || roundRect(u, v, 0.5, 0.5, 0.5, 0.5, 0.11) <= 0 {
						bg++
					}
					// The glyph is drawn in its own frame, scaled about the centre.
					gu, gv := 0.5+(u-0.5)/scale, 0.5+(v-0.5)/scale
					if bubble(gu, gv) <= 0 {
						fg++
						if textLines(gu, gv) <= 0 {
							line++
						}
					}
				}
			}
			n := float64(ss * ss)
			a := bg / n
			// Composite: background brand, white bubble, brand lines inside.
			w := (fg - line) / n
			r := float64(brand.R)*(a-w) + 255*w
			g := float64(brand.G)*(a-w) + 255*w
			b := float64(brand.B)*(a-w) + 255*w
			if a > 0 {
				img.SetNRGBA(x, y, color.NRGBA{uint8(math.Round(r / a)), uint8(math.Round(g / a)), uint8(math.Round(b / a)), uint8(math.Round(a * 255))})
			}
		}
	}
	return img
}

// roundRect is the signed distance from (u,v) to a rounded rectangle with
// centre (cx,cy), half sizes (hx,hy) and corner radius r.
func roundRect(u, v, cx, cy, hx, hy, r float64) float64 {
	dx := math.Abs(u-cx) - hx + r
	dy := math.Abs(v-cy) - hy + r
	out := math.Hypot(math.Max(dx, 0), math.Max(dy, 0))
	return out + math.Min(math.Max(dx, dy), 0) - r
}

// bubble is a speech bubble: a rounded body and a tail at its lower left.
func bubble(u, v float64) float64 {
	body := roundRect(u, v, 0.5, 0.45, 0.29, 0.21, 0.09)
	if body <= 0 {
		return body
	}
	if inTriangle(u, v, 0.31, 0.6, 0.47, 0.6, 0.29, 0.78) {
		return -1
	}
	return body
}

// textLines are two rounded bars standing for lines of a message.
func textLines(u, v float64) float64 {
	a := roundRect(u, v, 0.5, 0.39, 0.17, 0.035, 0.035)
	b := roundRect(u, v, 0.43, 0.51, 0.10, 0.035, 0.035)
	return math.Min(a, b)
}

func inTriangle(px, py, ax, ay, bx, by, cx, cy float64) bool {
	d1 := (px-bx)*(ay-by) - (ax-bx)*(py-by)
	d2 := (px-cx)*(by-cy) - (bx-cx)*(py-cy)
	d3 := (px-ax)*(cy-ay) - (cx-ax)*(py-ay)
	neg := d1 < 0 || d2 < 0 || d3 < 0
	pos := d1 > 0 || d2 > 0 || d3 > 0
	return !(neg && pos)
}
