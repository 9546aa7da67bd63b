package inbox

import (
	"strings"
	"testing"
)

func TestPriceFormatsByCurrency(t *testing.T) {
	for _, tc := range []struct {
		p            Price
		decimal, str string
	}{
		{Price{129950, "USD"}, "1299.50", "USD 1,299.50"},
		{Price{5, "USD"}, "0.05", "USD 0.05"},
		{Price{0, "EUR"}, "0.00", "EUR 0.00"},
		{Price{1200, "JPY"}, "1200", "JPY 1,200"},
		{Price{1250, "KWD"}, "1.250", "KWD 1.250"},
		{Price{7, "BHD"}, "0.007", "BHD 0.007"},
		{Price{123456789, "KRW"}, "123456789", "KRW 123,456,789"},
	} {
		if got := tc.p.Decimal(); got != tc.decimal {
			t.Errorf("%v Decimal = %q, want %q", tc.p, got, tc.decimal)
		}
		if got := tc.p.String(); got != tc.str {
			t.Errorf("%v String = %q, want %q", tc.p, got, tc.str)
		}
		back, err := ParsePrice(tc.decimal, tc.p.Currency)
		if err != nil || back != tc.p {
			t.Errorf("ParsePrice(%q, %s) = %v, %v; want %v", tc.decimal, tc.p.Currency, back, err, tc.p)
		}
	}
}

func TestParsePrice(t *testing.T) {
	for _, tc := range []struct {
		amount, currency string
		want             int64
		err              string
	}{
		{"12.5", "usd", 1250, ""},
		{" 12.50 ", "USD", 1250, ""},
		{"12", "USD", 1200, ""},
		{"0012.000", "USD", 1200, ""},
		{"1200", "JPY", 1200, ""},
		{"1200.0", "JPY", 1200, ""},
		{"1.5", "KWD", 1500, ""},
		{"12.505", "USD", 0, "2 decimal places"},
		{"1200.5", "JPY", 0, "no minor unit"},
		{"-1", "USD", 0, "plain decimal"},
		{"1e3", "USD", 0, "plain decimal"},
		{"12,50", "EUR", 0, "plain decimal"},
		{"", "EUR", 0, "plain decimal"},
		{".5", "EUR", 0, "plain decimal"},
		{"5.", "EUR", 0, "plain decimal"},
		{"1", "XYZ", 0, "ISO 4217"},
		{"1", "XAU", 0, "ISO 4217"},
		{"99999999999999999999", "USD", 0, "too large"},
		{"10000000000000.01", "USD", 0, "amount_minor"},
	} {
		p, err := ParsePrice(tc.amount, tc.currency)
		switch {
		case tc.err == "" && (err != nil || p.AmountMinor != tc.want):
			t.Errorf("ParsePrice(%q, %q) = %v, %v; want %d", tc.amount, tc.currency, p, err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParsePrice(%q, %q) error = %v; want one saying %q", tc.amount, tc.currency, err, tc.err)
		}
	}
}

func TestPriceValidate(t *testing.T) {
	for _, p := range []Price{{-1, "USD"}, {1, "usd"}, {1, ""}, {MaxAmountMinor + 1, "USD"}, {1, "EURO"}} {
		if err := p.Validate(); ErrorCode(err) != CodeInvalid {
			t.Errorf("%v: %v, want invalid", p, err)
		}
	}
	if err := (Price{MaxAmountMinor, "TND"}).Validate(); err != nil {
		t.Errorf("largest price: %v", err)
	}
}

func TestProductCaption(t *testing.T) {
	p := Product{Title: "Blue mug", Price: Price{1250, "KWD"}, Description: "Stoneware, 350 ml.", Available: true}
	if got, want := ProductCaption(p), "Blue mug\nKWD 1.250\n\nStoneware, 350 ml."; got != want {
		t.Errorf("caption = %q, want %q", got, want)
	}
	p.Available, p.Description = false, ""
	if got, want := ProductCaption(p), "Blue mug\nKWD 1.250 (currently unavailable)"; got != want {
		t.Errorf("caption = %q, want %q", got, want)
	}
	if got, want := ProductLine(Product{Title: "Tea", Price: Price{500, "JPY"}, Available: true}), "Tea – JPY 500"; got != want {
		t.Errorf("line = %q, want %q", got, want)
	}
	p.Description = strings.Repeat("long ", 400)
	if c := ProductCaption(p); len([]rune(c)) != 1024 || !strings.HasSuffix(c, "…") {
		t.Errorf("long caption has %d characters, want 1024 ending in …", len([]rune(c)))
	}
}

func TestApplyProductDraft(t *testing.T) {
	s := func(v string) *string { return &v }
	base := Product{SKU: "A-1", Title: "Mug", Price: Price{100, "EUR"}, Available: true}
	for _, tc := range []struct {
		name string
		d    ProductDraft
		err  string
	}{
		{"sku blank", ProductDraft{SKU: s("  ")}, "sku"},
		{"sku control", ProductDraft{SKU: s("A\x001")}, "sku"},
		{"sku long", ProductDraft{SKU: s(strings.Repeat("x", MaxSKULen+1))}, "sku"},
		{"title blank", ProductDraft{Title: s("")}, "title"},
		{"description long", ProductDraft{Description: s(strings.Repeat("x", MaxDescriptionLen+1))}, "description"},
		{"currency lower", ProductDraft{Price: &Price{100, "eur"}}, "currency"},
		{"negative", ProductDraft{Price: &Price{-5, "EUR"}}, "amount_minor"},
		{"image blank", ProductDraft{ImageSet: true, ImageMediaID: s(" ")}, "image_media_id"},
	} {
		p := base
		_, err := ApplyProductDraft(&p, tc.d)
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: %v, want an error about %s", tc.name, err, tc.err)
		}
		if p != base {
			t.Errorf("%s: a refused draft changed the product", tc.name)
		}
	}
	p := base
	changed, err := ApplyProductDraft(&p, ProductDraft{Title: s(" Mug "), SKU: s("A-1")})
	if err != nil || changed {
		t.Errorf("same values: changed %v, %v", changed, err)
	}
	changed, err = ApplyProductDraft(&p, ProductDraft{Price: &Price{200, "EUR"}})
	if err != nil || !changed || p.Price.AmountMinor != 200 {
		t.Errorf("new price: changed %v, %v, %+v", changed, err, p)
	}
}

func TestMediaTypes(t *testing.T) {
	for mime, kind := range map[string]string{
		"image/jpeg": KindImage, "audio/ogg": KindAudio, "video/mp4": KindVideo,
		"application/pdf": KindFile, "application/msword": KindFile,
	} {
		if got := MediaKind(mime); got != kind || !MediaAllowed(mime) {
			t.Errorf("%s: kind %s allowed %v; want %s, allowed", mime, got, MediaAllowed(mime), kind)
		}
	}
	for _, mime := range []string{"image/svg+xml", "text/html", "application/zip", "application/octet-stream", "application/x-msdownload", "text/plain"} {
		if MediaAllowed(mime) {
			t.Errorf("%s is allowed", mime)
		}
	}
}
