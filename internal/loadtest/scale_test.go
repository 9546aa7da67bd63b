package loadtest

import (
	"io"
	"slices"
	"strings"
	"testing"
)

func TestScaleFlags(t *testing.T) {
	f, err := ParseFlags(nil, io.Discard)
	if err != nil || slices.Contains(f.Scenarios, ScenarioScale) {
		t.Errorf("the default run includes the scale-out: %v, %v", f.Scenarios, err)
	}
	for _, tc := range []struct {
		args []string
		want string // in the error; "" means accepted
	}{
		{[]string{"-scenario", "scale"}, "-store postgres://"},
		{[]string{"-scenario", "scale", "-store", "mysql://x"}, "-store postgres://"},
		{[]string{"-scenario", "scale", "-store", "postgres://u@127.0.0.1/lt"}, "-nats"},
		{[]string{"-scenario", "scale", "-store", "postgres://u@127.0.0.1/lt", "-nats", "nats://127.0.0.1:4222", "-processes", "1"}, "-processes"},
		{[]string{"-scenario", "scale", "-store", "postgres://u@127.0.0.1/lt", "-nats", "nats://127.0.0.1:4222", "-scale-sockets", "2"}, "-scale-sockets"},
		{[]string{"-scenario", "scale", "-store", "postgresql://u@127.0.0.1/lt", "-nats", "nats://127.0.0.1:4222"}, ""},
	} {
		f, err := ParseFlags(tc.args, io.Discard)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v: %v", tc.args, err)
		case tc.want == "" && (!slices.Equal(f.Scenarios, []string{ScenarioScale}) || f.Scale.Processes != 3):
			t.Errorf("%v: scenarios %v, scale %+v", tc.args, f.Scenarios, f.Scale)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%v: error %v, want one naming %s", tc.args, err, tc.want)
		}
	}
}
