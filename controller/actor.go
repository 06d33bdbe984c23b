package controller

import (
	"errors"
	"net/http"
)

// actorHeader names the person or program behind a request. Until authentication lands it is
// taken as given and recorded with every write (fleetctl sends the local user name).
const actorHeader = "Ebbflow-Actor"

var errInternal = errors.New("internal error; see the controller's log")

// actorOf returns who made the request, "anonymous" when unnamed.
func actorOf(h http.Header) string {
	if a := h.Get(actorHeader); a != "" {
		if len(a) > 128 {
			a = a[:128]
		}
		return a
	}
	return "anonymous"
}
