package main

import (
	"encoding/json"
	"os/user"
	"strings"
	"testing"

	"github.com/ebbflow/ebbflow/controller/controllertest"
)

func TestAudit(t *testing.T) {
	n := controllertest.Start(t, controllertest.Options{})
	me := "unknown"
	if u, err := user.Current(); err == nil && u.Username != "" {
		me = u.Username
	}
	mustRun(t, n.URL, "cluster", "register", "eu-1", "-l", "env=prod")
	mustRun(t, n.URL, "cluster", "cordon", "eu-1", "--reason", "freeze")
	if code, _, _ := fleetctl(t, n.URL, "", "cluster", "register", "Bad_Name"); code != exitUsage {
		t.Fatalf("bad name: exit %d", code)
	}
	if code, _, _ := fleetctl(t, n.URL, "", "profile", "delete", "missing"); code != exitNotFound {
		t.Fatalf("missing profile: exit %d", code)
	}

	out := mustRun(t, n.URL, "audit", "--since", "1h")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if got := strings.Fields(lines[0]); strings.Join(got, " ") != "TIME ACTOR FROM WHAT RESOURCE RESULT" {
		t.Fatalf("header %q", lines[0])
	}
	// Newest first: the failed delete, the failed register, the cordon, the register (and the
	// node's own bootstrap writes carry no audit record).
	if len(lines) != 5 {
		t.Fatalf("want 4 records:\n%s", out)
	}
	cordon := strings.Fields(lines[3])
	if len(cordon) != 6 || cordon[1] != me || !strings.HasPrefix(cordon[2], "127.0.0.1:") ||
		cordon[3] != "ClusterService/CordonCluster" || cordon[4] != "cluster/eu-1" || cordon[5] != "ok" {
		t.Fatalf("cordon row %q", lines[3])
	}
	if !strings.Contains(lines[1], "ProfileService/DeleteProfile") || !strings.Contains(lines[1], "not_found: ") {
		t.Fatalf("delete row %q", lines[1])
	}

	failed := mustRun(t, n.URL, "audit", "--failed")
	if strings.Contains(failed, "CordonCluster") || !strings.Contains(failed, "invalid_argument: ") || !strings.Contains(failed, "cluster/Bad_Name") {
		t.Fatalf("--failed:\n%s", failed)
	}
	var res struct {
		Records []struct {
			Actor, Procedure, Resource, Code, RemoteAddress string
		}
	}
	if err := json.Unmarshal([]byte(mustRun(t, n.URL, "audit", "--resource", "cluster/eu-1", "-o", "json")), &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Records) != 2 || res.Records[0].Procedure != "ebbflow.v1.ClusterService/CordonCluster" ||
		res.Records[1].Procedure != "ebbflow.v1.ClusterService/RegisterCluster" || res.Records[1].Actor != me {
		t.Fatalf("--resource cluster/eu-1 -o json: %+v", res)
	}
	if y := mustRun(t, n.URL, "audit", "--limit", "1", "-o", "yaml"); strings.Count(y, "procedure:") != 1 || !strings.Contains(y, "remoteAddress:") {
		t.Fatalf("--limit 1 -o yaml:\n%s", y)
	}
	if code, out, errOut := fleetctl(t, n.URL, "", "audit", "--actor", "nobody"); code != exitOK || out != "" || !strings.Contains(errOut, "No records found.") {
		t.Fatalf("--actor nobody: exit %d\n%s\n%s", code, out, errOut)
	}
	if code, _, _ := fleetctl(t, n.URL, "", "audit", "--since", "-1h"); code != exitUsage {
		t.Fatalf("--since -1h: exit %d", code)
	}
}
