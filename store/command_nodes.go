package store

import (
	storev1 "github.com/ebbflow/ebbflow/proto/ebbflow/store/v1"
)

// putNodeMeta records a node's API address; an empty address forgets the node.
func (w *writer) putNodeMeta(c *storev1.PutNodeMeta) error {
	if err := checkName("node", c.GetNodeId()); err != nil {
		return err
	}
	b := w.tx.Bucket(bucketNodes)
	if c.GetApiAddress() == "" {
		must(b.Delete([]byte(c.GetNodeId())))
	} else {
		must(b.Put([]byte(c.GetNodeId()), []byte(c.GetApiAddress())))
	}
	w.changed(KindNode, c.GetNodeId())
	return nil
}
