package main

import (
	"errors"
	"slices"
	"testing"
)

func TestAllPagesFollowsTokens(t *testing.T) {
	pages := map[string]struct {
		items []int
		next  string
	}{"": {[]int{1, 2}, "b"}, "b": {[]int{3}, "c"}, "c": {[]int{4}, ""}}
	var asked []string
	got, err := allPages(func(tok string) ([]int, string, error) {
		asked = append(asked, tok)
		p := pages[tok]
		return p.items, p.next, nil
	})
	if err != nil || !slices.Equal(got, []int{1, 2, 3, 4}) || !slices.Equal(asked, []string{"", "b", "c"}) {
		t.Fatalf("allPages: %v %v after asking %q", got, err, asked)
	}
	boom := errors.New("unavailable")
	if got, err := allPages(func(string) ([]int, string, error) { return nil, "", boom }); !errors.Is(err, boom) || got != nil {
		t.Fatalf("allPages with a failing page: %v %v", got, err)
	}
}
