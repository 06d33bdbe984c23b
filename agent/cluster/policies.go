package cluster

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/protobuf/types/known/structpb"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// fieldManager is the server-side apply field manager of everything the driver writes.
const fieldManager = "ebbflow-agent"

// policyObjects expands the l7 phase's policies into the objects to apply: a namespaced policy
// without a namespace is applied once in each of the phase's namespaces ("default" when the
// phase lists none).
func (d *Driver) policyObjects(policies []*structpb.Struct, namespaces []string) ([]*unstructured.Unstructured, error) {
	if len(namespaces) == 0 {
		namespaces = []string{"default"}
	}
	objs, err := parsePolicies(policies)
	if err != nil {
		return nil, err
	}
	mapper, err := d.mapper()
	if err != nil {
		return nil, err
	}
	var out []*unstructured.Unstructured
	for _, u := range objs {
		gvk := u.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			return nil, fmt.Errorf("l7 policy %s %q: %s is not served by the cluster (are Cilium's CRDs installed?): %w", gvk.Kind, u.GetName(), gvk.GroupVersion(), err)
		}
		switch {
		case m.Scope.Name() != meta.RESTScopeNameNamespace:
			u.SetNamespace("")
			out = append(out, u)
		case u.GetNamespace() != "":
			out = append(out, u)
		default:
			for _, ns := range namespaces {
				c := u.DeepCopy()
				c.SetNamespace(ns)
				out = append(out, c)
			}
		}
	}
	return out, nil
}

// parsePolicies turns the l7 phase's policies, as the controller sent them, into objects; each
// must name its apiVersion, kind and metadata.name. It touches no cluster.
func parsePolicies(policies []*structpb.Struct) ([]*unstructured.Unstructured, error) {
	out := make([]*unstructured.Unstructured, 0, len(policies))
	for i, p := range policies {
		u := &unstructured.Unstructured{Object: p.AsMap()}
		gvk := u.GroupVersionKind()
		if gvk.Kind == "" || gvk.Version == "" || u.GetName() == "" {
			return nil, fmt.Errorf("l7 policy %d: apiVersion, kind and metadata.name are required", i)
		}
		out = append(out, u)
	}
	return out, nil
}

// applyObject server-side applies one object, owning every field it sets.
func (d *Driver) applyObject(ctx context.Context, u *unstructured.Unstructured, assignmentID string) error {
	mapper, err := d.mapper()
	if err != nil {
		return err
	}
	gvk := u.GroupVersionKind()
	m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return err
	}
	labels := u.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	for k, v := range managedLabels() {
		labels[k] = v
	}
	u.SetLabels(labels)
	ann := u.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	ann["ebbflow.io/assignment"] = assignmentID
	u.SetAnnotations(ann)
	force := true
	_, err = d.dyn.Resource(m.Resource).Namespace(u.GetNamespace()).Apply(ctx, u.GetName(), u, metav1.ApplyOptions{FieldManager: fieldManager, Force: force})
	if err != nil {
		return fmt.Errorf("apply %s %s: %w", gvk.Kind, objectName(u.GetNamespace(), u.GetName()), err)
	}
	return nil
}

// deleteObject deletes an applied object; one already gone is fine.
func (d *Driver) deleteObject(ctx context.Context, o AppliedObject) error {
	mapper, err := d.mapper()
	if err != nil {
		return err
	}
	gv, err := schema.ParseGroupVersion(o.APIVersion)
	if err != nil {
		return err
	}
	m, err := mapper.RESTMapping(schema.GroupKind{Group: gv.Group, Kind: o.Kind}, gv.Version)
	if meta.IsNoMatchError(err) {
		return nil // the CRD is gone, and its objects with it
	}
	if err != nil {
		return err
	}
	err = d.dyn.Resource(m.Resource).Namespace(o.Namespace).Delete(ctx, o.Name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete %s %s: %w", o.Kind, objectName(o.Namespace, o.Name), err)
	}
	return nil
}

// mapper is a discovery-backed RESTMapper built fresh, so CRDs installed since the last call
// are found.
func (d *Driver) mapper() (meta.RESTMapper, error) {
	g := &restGetter{cfg: d.cfg.RESTConfig}
	m, err := g.ToRESTMapper()
	if err != nil {
		return nil, errors.New("discovery: " + err.Error())
	}
	return m, nil
}

func objectName(ns, name string) string {
	if ns == "" {
		return name
	}
	return ns + "/" + name
}
