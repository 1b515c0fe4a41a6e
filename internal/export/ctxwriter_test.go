package export

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

// cancelling cancels its context at its first write.
type cancelling struct {
	bytes.Buffer
	cancel context.CancelFunc
}

func (c *cancelling) Write(b []byte) (int, error) {
	c.cancel()
	return c.Buffer.Write(b)
}

// TestCtxWriterStopsBetweenChunks: a large write stops at the first MiB
// after its context ends.
func TestCtxWriterStopsBetweenChunks(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	dst := &cancelling{cancel: cancel}
	n, err := ctxWriter{ctx, dst}.Write(make([]byte, 3<<20))
	if n != 1<<20 || dst.Len() != 1<<20 || !errors.Is(err, context.Canceled) {
		t.Errorf("wrote %d bytes (%d arrived), %v: want one MiB, then the context's error", n, dst.Len(), err)
	}
}
