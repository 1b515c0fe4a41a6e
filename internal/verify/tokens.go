package verify

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// tokens reads a document that must be canonical JSON (RFC 8785) from a
// stream, token by token, each checked as it is read: valid JSON, written
// as RFC 8785 writes it, with no whitespace between tokens. Structure (where
// commas and colons go, member order) is the caller's to check. Since the
// canonical form of such a document is its bytes as read, the bytes read
// are handed to feed in spans (see flush) rather than rebuilt token by token.
type tokens struct {
	src  io.Reader
	buf  []byte
	pos  int   // buf[pos:end] is not read yet
	end  int   // where what was read from src ends
	off  int64 // stream offset of buf[0]
	mark int   // buf[mark:pos] is read but not yet fed
	done bool  // src has no more
	err  error // src's error, other than io.EOF
	feed func([]byte)
}

// tokenChunk is how much is read from the stream at a time; a token longer
// than that grows the buffer to hold it, up to maxToken.
const tokenChunk = 64 << 10

// maxToken bounds one token, so that a small ZIP cannot make verify hold
// gigabytes: the longest runproof writes is a step's content (at most
// 4 MiB as sent), escaped.
const maxToken = 32 << 20

func newTokens(src io.Reader, feed func([]byte)) *tokens {
	return &tokens{src: src, buf: make([]byte, 2*tokenChunk), feed: feed}
}

// flush feeds the bytes read since the last flush (or skip).
func (t *tokens) flush() {
	if t.mark < t.pos {
		t.feed(t.buf[t.mark:t.pos])
	}
	t.mark = t.pos
}

// skip drops the bytes read since the last flush: they are fed to nothing.
func (t *tokens) skip() { t.mark = t.pos }

// more reads more of the stream while the token at buf[pos] is incomplete,
// keeping the token: what was read before it is fed first. It reports
// whether any byte was added.
func (t *tokens) more() bool {
	if t.done {
		return false
	}
	t.flush()
	n := copy(t.buf, t.buf[t.pos:t.end])
	t.off += int64(t.pos)
	t.pos, t.mark, t.end = 0, 0, n
	if n > maxToken {
		t.done, t.err = true, formErrorf("not valid JSON: a value longer than %d bytes at byte %d", maxToken, t.off)
		return false
	}
	if len(t.buf)-n < tokenChunk {
		t.buf = append(t.buf, make([]byte, len(t.buf))...)
	}
	for {
		m, err := t.src.Read(t.buf[t.end:])
		t.end += m
		if err != nil {
			t.done = true
			if err != io.EOF {
				t.err = err
			}
		}
		if m > 0 || t.done {
			return m > 0
		}
	}
}

// peek returns the next byte without reading it; 0 at the end (and for a
// NUL byte: atEnd tells them apart).
func (t *tokens) peek() byte {
	if t.pos == t.end && !t.more() {
		return 0
	}
	return t.buf[t.pos]
}

// atEnd reports whether the stream has no more bytes.
func (t *tokens) atEnd() bool { return t.pos == t.end && !t.more() }

// offset is the stream offset of the next byte.
func (t *tokens) offset() int64 { return t.off + int64(t.pos) }

// failure is the error of a token that could not be read whole: the
// stream's own when reading failed, else the JSON's.
func (t *tokens) failure(format string, args ...any) error {
	if t.err != nil {
		return t.err
	}
	return formErrorf("not valid JSON: "+format+" (byte %d)", append(args, t.offset())...)
}

// expect reads c, which must come next.
func (t *tokens) expect(c byte) error {
	switch got := t.peek(); {
	case got == c:
		t.pos++
		return nil
	case t.atEnd():
		return t.failure("the document ends where %q is expected", c)
	case isSpace(got):
		return t.whitespace()
	default:
		return t.failure("%q where %q is expected", got, c)
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func (t *tokens) whitespace() error {
	return formErrorf("it is not in canonical (RFC 8785) form: whitespace at byte %d", t.offset())
}

// kind tells the next value's kind: '"', '0' (a number),
// '{', '[', 't', 'f', 'n'; or the closing '}' or ']'; 0 at the end or at
// anything else.
func (t *tokens) kind() byte {
	switch c := t.peek(); c {
	case '"', '{', '[', '}', ']', 't', 'f', 'n':
		return c
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return '0'
	}
	return 0
}

// unexpected is the error of a value that is none.
func (t *tokens) unexpected() error {
	switch c := t.peek(); {
	case t.atEnd():
		return t.failure("the document ends where a value is expected")
	case isSpace(c):
		return t.whitespace()
	default:
		return t.failure("%q where a value is expected", c)
	}
}

// plain marks the bytes a string holds as they are in canonical form: all
// but '"', '\\', the control characters and the non-ASCII bytes, which are
// looked at one by one.
var plain = func() (p [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		p[c] = c != '"' && c != '\\'
	}
	return p
}()

// str reads a string, valid until the next read, checking that it is
// valid UTF-8 written as RFC 8785 writes strings (see canonicalString).
func (t *tokens) str() ([]byte, error) {
	if t.peek() != '"' {
		return nil, t.unexpected()
	}
	i := t.pos + 1
	for {
		for b := t.buf[:t.end]; i < len(b) && plain[b[i]]; {
			i++
		}
		if i == t.end {
			i -= t.pos
			if !t.more() {
				return nil, t.failure("a string does not end")
			}
			i += t.pos
			continue
		}
		switch c := t.buf[i]; {
		case c == '"':
			s := t.buf[t.pos : i+1]
			t.pos = i + 1
			return s, nil
		case c == '\\':
			if t.end-i < 6 && !t.done { // an escape is at most 6 bytes: have them, or the end
				i -= t.pos
				t.more()
				i += t.pos
				continue
			}
			n := escapeLen(t.buf[i:t.end])
			if n == 0 && t.end-i < 6 && (t.end-i < 2 || t.buf[i+1] == 'u') { // cut short
				return nil, t.failure("a string does not end")
			}
			if n == 0 && !validEscape(t.buf[i:t.end]) {
				return nil, t.failure("invalid escape %.6q in a string", t.buf[i:min(i+6, t.end)])
			}
			if n == 0 { // valid JSON, but not as RFC 8785 writes it
				return nil, &tokenError{what: fmt.Sprintf("string %.40s", t.buf[t.pos:min(i+6, t.end)])}
			}
			i += n
		case c < 0x20:
			return nil, t.failure("control character %#x in a string", c)
		default:
			if !utf8.FullRune(t.buf[i:t.end]) {
				i -= t.pos
				if t.more() {
					i += t.pos
					continue
				}
				i += t.pos
			}
			r, n := utf8.DecodeRune(t.buf[i:t.end])
			if r == utf8.RuneError && n <= 1 {
				return nil, t.failure("invalid UTF-8 in a string")
			}
			i += n
		}
	}
}

// escapeLen is the length of the escape that b starts with when it is one
// RFC 8785 writes (see canonicalString), else 0.
func escapeLen(b []byte) int {
	if len(b) < 2 {
		return 0
	}
	switch b[1] {
	case '"', '\\', 'b', 'f', 'n', 'r', 't':
		return 2
	case 'u':
		if len(b) >= 6 && canonicalString([]byte{'"', '\\', 'u', b[2], b[3], b[4], b[5], '"'}) {
			return 6
		}
	}
	return 0
}

// A tokenError is a token valid in JSON but not written as RFC 8785 writes
// it; the scanner says where it is.
type tokenError struct {
	what string // the token, or its start: `string "a\/b`, `number 1.0`
}

func (e *tokenError) Error() string { return e.what + " is not written as RFC 8785 writes it" }

// numberByte marks the bytes a number token may hold.
var numberByte = func() (p [256]bool) {
	for _, c := range []byte("0123456789+-.eE") {
		p[c] = true
	}
	return p
}()

// number reads a number, valid until the next read, checking that it is
// JSON's grammar written as RFC 8785 writes the double it denotes.
func (t *tokens) number(scratch *[]byte) ([]byte, error) {
	i := t.pos
	for {
		for b := t.buf[:t.end]; i < len(b) && numberByte[b[i]]; {
			i++
		}
		if i < t.end || t.done {
			break
		}
		i -= t.pos
		t.more()
		i += t.pos
	}
	n := t.buf[t.pos:i]
	if smallInteger(n) { // most numbers: canonical as they are
		t.pos = i
		return n, nil
	}
	if !validNumber(n) {
		return nil, t.failure("%.40q is not a number", n)
	}
	if !canonicalNumber(n, scratch) {
		return nil, &tokenError{what: fmt.Sprintf("number %.40s", n)}
	}
	t.pos = i
	return n, nil
}

// smallInteger reports whether b is a non-negative integer of at most 15
// digits written without a leading zero: exact in a double, and written
// as RFC 8785 writes it.
func smallInteger(b []byte) bool {
	if len(b) == 0 || len(b) > 15 || b[0] == '0' && len(b) > 1 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// validNumber reports whether b is a JSON number:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func validNumber(b []byte) bool {
	digits := func(b []byte) int {
		n := 0
		for n < len(b) && b[n] >= '0' && b[n] <= '9' {
			n++
		}
		return n
	}
	b = bytes.TrimPrefix(b, []byte{'-'})
	n := digits(b)
	if n == 0 || n > 1 && b[0] == '0' {
		return false
	}
	b = b[n:]
	if len(b) > 0 && b[0] == '.' {
		if n = digits(b[1:]); n == 0 {
			return false
		}
		b = b[1+n:]
	}
	if len(b) > 0 && (b[0] == 'e' || b[0] == 'E') {
		b = b[1:]
		if len(b) > 0 && (b[0] == '+' || b[0] == '-') {
			b = b[1:]
		}
		if n = digits(b); n == 0 {
			return false
		}
		b = b[n:]
	}
	return len(b) == 0
}

// literal reads true, false or null.
func (t *tokens) literal() ([]byte, error) {
	for t.end-t.pos < 5 && t.more() {
	}
	for _, lit := range [...]string{"true", "false", "null"} {
		if bytes.HasPrefix(t.buf[t.pos:t.end], []byte(lit)) {
			v := t.buf[t.pos : t.pos+len(lit)]
			t.pos += len(lit)
			return v, nil
		}
	}
	return nil, t.unexpected()
}

// validEscape reports whether b starts with an escape JSON allows, canonical
// or not: \" \\ \/ \b \f \n \r \t or \u and four hexadecimal digits.
func validEscape(b []byte) bool {
	if len(b) < 2 || b[0] != '\\' {
		return false
	}
	if strings.IndexByte(`"\\/bfnrt`, b[1]) >= 0 {
		return true
	}
	if b[1] != 'u' || len(b) < 6 {
		return false
	}
	for _, c := range b[2:6] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}
