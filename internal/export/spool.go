package export

import (
	"bufio"
	"io"
	"os"
	"sync"
)

// fileSpool keeps the steps of a bundle being exported in a temporary file
// (an evidence.Spool), so that an export holds no more than a page of
// steps in memory however long the run. The file is in the system's
// temporary directory ($TMPDIR), unlinked at once where the system allows
// it, and removed by Close.
type fileSpool struct {
	f    *os.File
	w    *bufio.Writer
	size int64

	flush sync.Once
	err   error // of the flush
}

func newFileSpool() (*fileSpool, error) {
	f, err := os.CreateTemp("", "runproof-steps-*")
	if err != nil {
		return nil, err
	}
	os.Remove(f.Name()) // Unix: the file lives until it is closed; elsewhere Close removes it
	return &fileSpool{f: f, w: bufio.NewWriterSize(f, 64<<10)}, nil
}

// Write appends to the spool; every Write comes before the first Reader.
func (s *fileSpool) Write(b []byte) (int, error) {
	n, err := s.w.Write(b)
	s.size += int64(n)
	return n, err
}

// Reader reads what was written, from the start; several can read at once.
func (s *fileSpool) Reader() io.Reader {
	s.flush.Do(func() { s.err = s.w.Flush() })
	if s.err != nil {
		return errReader{s.err}
	}
	return io.NewSectionReader(s.f, 0, s.size)
}

// Close closes and removes the file.
func (s *fileSpool) Close() error {
	err := s.f.Close()
	os.Remove(s.f.Name())
	return err
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }
