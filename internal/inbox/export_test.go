package inbox

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
)

// CheckDecodedConversations decodes afresh the bytes each remembered
// conversation was remembered with and reports any value that differs
// from the remembered one: a hit must give exactly what a decode would.
// It returns how many entries it checked.
func (s *Service) CheckDecodedConversations() (int, error) {
	n := 0
	for i := range s.decoded.conversations.shards {
		sh := &s.decoded.conversations.shards[i]
		sh.mu.Lock()
		for key, e := range sh.m {
			var fresh Conversation
			if err := json.Unmarshal(e.raw, &fresh); err != nil {
				sh.mu.Unlock()
				return n, fmt.Errorf("%s: %w", key, err)
			}
			if fresh.Labels == nil {
				fresh.Labels = []string{}
			}
			if !reflect.DeepEqual(fresh, e.v) {
				sh.mu.Unlock()
				return n, fmt.Errorf("%s: remembered\n%+v\ndecodes to\n%+v", key, e.v, fresh)
			}
			n++
		}
		sh.mu.Unlock()
	}
	return n, nil
}

// DecodedMentioning counts remembered records whose bytes contain s.
func (s *Service) DecodedMentioning(str string) int {
	return countMentions(s.decoded.conversations, str) + countMentions(s.decoded.contacts, str) + countMentions(s.decoded.channels, str)
}

func countMentions[T any](d *decodedCache[T], str string) int {
	n := 0
	for i := range d.shards {
		sh := &d.shards[i]
		sh.mu.Lock()
		for _, e := range sh.m {
			if bytes.Contains(e.raw, []byte(str)) {
				n++
			}
		}
		sh.mu.Unlock()
	}
	return n
}

// ForgetDecoded empties the record cache, so the next reads decode.
func (s *Service) ForgetDecoded() { s.decoded.clear() }
