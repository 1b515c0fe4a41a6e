package export

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"sync"

	"github.com/runproof/runproof/internal/evidence"
	"github.com/runproof/runproof/internal/runproof"
)

// spools makes the spools of one export's bundles (evidence.Options.NewSpool)
// and closes them all when the export is done.
type spools struct{ made []*fileSpool }

func (s *spools) new() (evidence.Spool, error) { return s.file(), nil }

// file returns a new spool, closed with the others.
func (s *spools) file() *fileSpool {
	f := &fileSpool{}
	s.made = append(s.made, f)
	return f
}

func (s *spools) close() {
	for _, f := range s.made {
		f.close()
	}
}

// fileSpool keeps the steps of a bundle being exported in a temporary file,
// so that an export holds no more than a page of steps in memory however
// long the run. What fits in spoolBuffer stays in memory (a small bundle
// never touches the disk); the file is made once more comes, in the
// system's temporary directory ($TMPDIR), unlinked at once where the
// system allows it, and removed by close.
type fileSpool struct {
	mem  []byte // all that was written, while it fits in spoolBuffer
	f    *os.File
	w    *bufio.Writer // to f
	size int64
	err  error // the first error, returned by every call after it

	flush sync.Once // before the first Reader
	read  bool
}

// spoolBuffer is what a spool holds in memory, in all or as the buffer of
// its file.
const spoolBuffer = 64 << 10

// Write appends to the spool. Every Write comes before the first Reader.
func (s *fileSpool) Write(b []byte) (int, error) {
	if s.err == nil && s.read {
		s.err = errors.New("export: a spool written to after it was read")
	}
	if s.err == nil && s.f == nil && len(s.mem)+len(b) > spoolBuffer {
		if s.f, s.err = os.CreateTemp("", "runproof-steps-*"); s.err == nil {
			os.Remove(s.f.Name()) // Unix: the file lives until it is closed; elsewhere close removes it
			s.w = bufio.NewWriterSize(s.f, spoolBuffer)
			_, s.err = s.w.Write(s.mem)
			s.mem = nil
		}
	}
	if s.err != nil {
		return 0, spoolError(s.err)
	}
	if s.f == nil {
		s.mem = append(s.mem, b...)
		s.size += int64(len(b))
		return len(b), nil
	}
	n, err := s.w.Write(b)
	s.size += int64(n)
	s.err = err
	return n, spoolError(err)
}

// Flush writes what is buffered to the file, so that a full disk shows
// here rather than at the first Reader.
func (s *fileSpool) Flush() error {
	if s.err == nil && s.w != nil {
		s.err = s.w.Flush()
	}
	return spoolError(s.err)
}

// Size is how many bytes were written.
func (s *fileSpool) Size() int64 { return s.size }

// Reader reads what was written, from the start; several can read at once.
func (s *fileSpool) Reader() io.Reader {
	s.flush.Do(func() {
		s.read = true
		if s.err == nil && s.w != nil {
			s.err = s.w.Flush()
		}
	})
	switch {
	case s.err != nil:
		return errReader{spoolError(s.err)}
	case s.f == nil:
		return bytes.NewReader(s.mem)
	}
	return io.NewSectionReader(s.f, 0, s.size)
}

func (s *fileSpool) close() {
	if s.f != nil {
		s.f.Close()
		os.Remove(s.f.Name())
	}
}

// spoolError says what stopped an export keeping its steps: most often a
// full or unwritable $TMPDIR, which its operator can mend.
func spoolError(err error) error {
	if err == nil {
		return nil
	}
	cause := err
	var pe *fs.PathError
	if errors.As(err, &pe) {
		cause = pe.Err // not the server's paths
	}
	return runproof.Errorf(runproof.EUNAVAILABLE, "the export could not keep the run's steps in a temporary file (%v): the server's operator should free space in its temporary directory, or point TMPDIR at one with room; then ask again", cause)
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }
