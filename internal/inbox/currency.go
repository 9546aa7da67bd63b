package inbox

import (
	"strconv"
	"strings"
)

// currencyDigits maps each ISO 4217 code in circulation to its number of
// minor-unit digits (JPY has none, USD two, KWD three). Fund codes, precious
// metals and testing codes are left out: nobody prices a product in them.
// A product's price is an integer count of minor units, so this table is
// what turns it into "12.50" and back without floating point.
var currencyDigits = func() map[string]int {
	m := map[string]int{}
	for _, c := range strings.Fields(`
		AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BRL
		BSD BTN BWP BYN BZD CAD CDF CHF CNY COP CRC CUP CVE CZK DKK DOP DZD EGP
		ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS
		INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD
		MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN
		PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD
		SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD UYU UZS VED
		VES WST XCD XCG YER ZAR ZMW ZWG`) {
		m[c] = 2
	}
	for _, c := range strings.Fields("BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX VND VUV XAF XOF XPF") {
		m[c] = 0
	}
	for _, c := range strings.Fields("BHD IQD JOD KWD LYD OMR TND") {
		m[c] = 3
	}
	return m
}()

// CurrencyDigits reports how many minor-unit digits an ISO 4217 currency
// has, and whether the code is one OneBox accepts.
func CurrencyDigits(code string) (int, bool) {
	d, ok := currencyDigits[code]
	return d, ok
}

// MaxAmountMinor bounds prices so every amount survives a round trip
// through JavaScript numbers (exact up to 2^53) in the apps.
const MaxAmountMinor = 1_000_000_000_000_000

// Price is an amount of money as an integer count of the currency's minor
// unit (cents for USD, yen for JPY, fils for KWD), never a float.
type Price struct {
	AmountMinor int64  `json:"amount_minor"`
	Currency    string `json:"currency"`
}

// Validate checks the currency code and the amount's range.
func (p Price) Validate() error {
	if _, ok := CurrencyDigits(p.Currency); !ok {
		return invalid("price.currency must be an ISO 4217 code in use, such as USD, EUR or JPY (upper case)")
	}
	if p.AmountMinor < 0 || p.AmountMinor > MaxAmountMinor {
		return invalid("price.amount_minor must be a whole number from 0 to %d", int64(MaxAmountMinor))
	}
	return nil
}

// Decimal writes the amount in major units with the currency's digits and
// no grouping, e.g. "1299.50" for 129950 USD, "1200" for 1200 JPY and
// "1.250" for 1250 KWD: the form spreadsheets and ParsePrice read back.
func (p Price) Decimal() string {
	digits, _ := CurrencyDigits(p.Currency)
	s := strconv.FormatInt(p.AmountMinor, 10)
	if digits == 0 {
		return s
	}
	if len(s) <= digits {
		s = strings.Repeat("0", digits-len(s)+1) + s
	}
	return s[:len(s)-digits] + "." + s[len(s)-digits:]
}

// String is the price as people read it in a message: the code, then the
// amount with its thousands grouped, e.g. "USD 1,299.50" or "JPY 1,200".
func (p Price) String() string {
	dec := p.Decimal()
	whole, frac, hasFrac := strings.Cut(dec, ".")
	var b strings.Builder
	b.WriteString(p.Currency)
	b.WriteByte(' ')
	for i, r := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if hasFrac {
		b.WriteByte('.')
		b.WriteString(frac)
	}
	return b.String()
}

// ParsePrice reads a decimal amount in major units ("12.5", "1200",
// "1.250") for a currency, refusing more decimals than the currency has
// rather than rounding someone's price.
func ParsePrice(amount, currency string) (Price, error) {
	currency = strings.ToUpper(strings.TrimSpace(currency))
	digits, ok := CurrencyDigits(currency)
	if !ok {
		return Price{}, invalid("currency must be an ISO 4217 code in use, such as USD, EUR or JPY")
	}
	amount = strings.TrimSpace(amount)
	whole, frac, hasFrac := strings.Cut(amount, ".")
	if whole == "" || !allDigits(whole) || (hasFrac && (frac == "" || !allDigits(frac))) {
		return Price{}, invalid("price must be a plain decimal number such as 12.50")
	}
	frac = strings.TrimRight(frac, "0")
	if len(frac) > digits {
		if digits == 0 {
			return Price{}, invalid("%s has no minor unit: the price must be a whole number", currency)
		}
		return Price{}, invalid("%s has %d decimal places: the price has more", currency, digits)
	}
	whole = strings.TrimLeft(whole, "0")
	if len(whole) > 16 {
		return Price{}, invalid("price is too large")
	}
	n, err := strconv.ParseInt(whole+frac+strings.Repeat("0", digits-len(frac)), 10, 64)
	if whole+frac == "" {
		n, err = 0, nil
	}
	if err != nil {
		return Price{}, invalid("price is too large")
	}
	p := Price{AmountMinor: n, Currency: currency}
	return p, p.Validate()
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
