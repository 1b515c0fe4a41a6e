package verify

import (
	"crypto/sha256"
	"hash"
	"io"
)

// Chunks a member is read in, and how many are in flight at once: memory
// stays flat whatever the member's size.
const (
	chunkSize = 32 << 10
	chunks    = 3
)

// memberReader reads a member of the ZIP that a goroutine of its own
// inflates ahead, hashing and counting the bytes as it goes: inflating a
// member and parsing it take two cores, and the digest is of the very
// bytes the parser reads.
type memberReader struct {
	full    chan []byte   // inflated chunks, in order; closed after the last
	free    chan []byte   // chunks read, to be filled again
	stop    chan struct{} // closed when the member is no longer read
	stopped chan struct{} // closed when the inflating goroutine has returned
	cur     []byte        // what is left of the chunk being read
	chunk   []byte        // the chunk being read, to give back

	// Written by the inflating goroutine, read once full is closed.
	h   hash.Hash
	n   int64
	err error // the first error other than io.EOF
}

// stream opens a member for reading; the error of a member that cannot be
// opened is the reader's. done must be called once the reader is no
// longer read.
func (v *verification) stream(name string) (r *memberReader, done func()) {
	r = &memberReader{full: make(chan []byte, chunks), free: make(chan []byte, chunks), stop: make(chan struct{}),
		stopped: make(chan struct{}), h: sha256.New()}
	rc, err := v.files[name].Open()
	if err != nil {
		r.err = err
		close(r.full)
		return r, func() {}
	}
	for range chunks {
		r.free <- make([]byte, chunkSize)
	}
	go r.inflate(rc)
	return r, func() {
		close(r.stop)
		<-r.stopped
		rc.Close()
	}
}

// inflate reads src into chunks until its end, an error or stop.
func (r *memberReader) inflate(src io.Reader) {
	defer close(r.stopped)
	defer close(r.full)
	for {
		var chunk []byte
		select {
		case chunk = <-r.free:
		case <-r.stop:
			return
		}
		n, err := fill(src, chunk)
		r.h.Write(chunk[:n])
		r.n += int64(n)
		if n > 0 {
			select {
			case r.full <- chunk[:n]:
			case <-r.stop:
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				r.err = err
			}
			return
		}
	}
}

// fill reads into b until it is full or src ends or fails.
func fill(src io.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := src.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func (r *memberReader) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		if !r.next() {
			if r.err != nil {
				return 0, r.err
			}
			return 0, io.EOF
		}
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

// next gives the current chunk back and makes the next one current; false
// once there is none.
func (r *memberReader) next() bool {
	if r.chunk != nil {
		r.free <- r.chunk[:cap(r.chunk)] // never blocks: there are as many places as chunks
	}
	chunk, ok := <-r.full
	r.chunk, r.cur = chunk, chunk
	return ok
}

// drain reads the rest, so that the digest covers the whole member.
func (r *memberReader) drain() {
	for r.next() {
	}
}
