package cluster

import (
	"context"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"

	"github.com/ebbflow/ebbflow/e2e/kubebox"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// has reports whether a report with status st was received (without taking the reports).
func (r *recorder) has(st ebbflowv1.PhaseStatus) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.ContainsFunc(r.reports, func(x report) bool { return x.status == st })
}

func (r *recorder) waitFor(t *testing.T, st ebbflowv1.PhaseStatus, timeout time.Duration) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		return r.has(st), nil
	})
	if err != nil {
		r.mu.Lock()
		defer r.mu.Unlock()
		t.Fatalf("no %s report within %s; reports %v", st, timeout, r.reports)
	}
}

// TestHandlerRollbackCancelsApply: through the OnAssignment adapter, a ROLLBACK of the same
// rollout cancels the APPLY in flight (here in a long measurement), and rolls its step back.
func TestHandlerRollbackCancelsApply(t *testing.T) {
	ctx := context.Background()
	c := kubebox.ForTest(t, kubebox.Options{Nodes: []kubebox.Node{{Name: "node-a", Kernel: "6.8.0-45-generic"}}})
	if _, err := c.Clientset.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "web"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, c, "kube-system", "ebbflow-system", map[string]any{"l7Proxy": false}, false)
	tg := newTarget(t)
	long := probes(tg.url)
	long.Windows = 1
	long.Probes[0].Duration = durationpb.New(time.Minute)

	d := e.driver(nil)
	rec := &recorder{}
	h := d.Handler(rec)
	spec := testProfile(t, "kube-system", []string{"web"}, nil)
	apply := assignment("a-l7", ebbflowv1.AssignmentAction_ASSIGNMENT_ACTION_APPLY, ebbflowv1.Phase_PHASE_L7, spec, long)
	h(ctx, &ebbflowv1.Assignment{Id: "idle", Action: ebbflowv1.AssignmentAction_ASSIGNMENT_ACTION_IDLE})
	h(ctx, apply)
	h(ctx, apply) // re-sent by the stream: not run twice
	rec.waitFor(t, ebbflowv1.PhaseStatus_PHASE_STATUS_VERIFIED, time.Minute)

	start := time.Now()
	rb := assignment("a-rb", ebbflowv1.AssignmentAction_ASSIGNMENT_ACTION_ROLLBACK, ebbflowv1.Phase_PHASE_L7, spec, long)
	rb.RollbackToHelmRevision = 1
	h(ctx, rb)
	rec.waitFor(t, ebbflowv1.PhaseStatus_PHASE_STATUS_ROLLED_BACK, time.Minute)
	if el := time.Since(start); el > 45*time.Second {
		t.Errorf("rollback took %s: the measurement in flight was not cancelled", el)
	}
	d.Close()
	rs := rec.take()
	if got := statuses(rs); !slices.Equal(got, []string{"STARTED", "APPLIED", "VERIFIED", "STARTED", "ROLLED_BACK"}) {
		t.Fatalf("reports %v", rs)
	}
	if rs[3].ref.GetAssignmentId() != "a-rb" || rs[4].before != 2 || rs[4].after != 3 {
		t.Errorf("rollback reports %v", rs[3:])
	}
	hs := e.history()
	if len(hs) != 3 || hs[2].Info.Description != "Rollback to 1" {
		t.Fatalf("history: %d revisions", len(hs))
	}
	dyn := dynamic.NewForConfigOrDie(c.RESTConfig)
	if _, err := dyn.Resource(cnpResource).Namespace("web").Get(ctx, "ebbflow-l7-visibility", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("policy of the cancelled apply still there: %v", err)
	}
}
