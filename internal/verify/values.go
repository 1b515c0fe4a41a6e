package verify

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"

	"github.com/runproof/runproof/internal/runproof"
)

// maxExact is the largest integer a JSON number holds exactly (RFC 8785
// reads numbers as IEEE doubles).
const maxExact = 1 << 53

// integer parses a non-negative decimal integer of at most 2^53.
func integer(b []byte) (int64, error) {
	if len(b) == 0 || len(b) > 16 {
		return 0, fmt.Errorf("%q is not a non-negative integer of at most 2^53", b)
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%q is not a non-negative integer", b)
		}
		n = n*10 + int64(c-'0')
	}
	if n > maxExact || (len(b) > 1 && b[0] == '0') {
		return 0, fmt.Errorf("%q is not a non-negative integer of at most 2^53", b)
	}
	return n, nil
}

// fixed parses a decimal number into an integer count of 1/scale units
// (scale a power of ten), as runproof.ParseFixed does. A plain decimal with
// no more fractional digits than scale keeps is read here, without
// allocating, since there is one per step; anything else goes to
// runproof.ParseFixed.
func fixed(b []byte, scale int64) (int64, error) {
	digits := 0
	for s := scale; s > 1; s /= 10 {
		digits++
	}
	whole, frac, dot := bytes.Cut(b, []byte{'.'})
	if len(whole) > 0 && len(whole) <= 15 && len(frac) <= digits && (!dot || len(frac) > 0) {
		var n, f int64
		ok := true
		for _, c := range whole {
			ok = ok && c >= '0' && c <= '9'
			n = n*10 + int64(c-'0')
		}
		for i := range digits {
			f *= 10
			if i < len(frac) {
				ok = ok && frac[i] >= '0' && frac[i] <= '9'
				f += int64(frac[i] - '0')
			}
		}
		if ok && n <= maxExact/scale {
			if n = n*scale + f; n <= maxExact {
				return n, nil
			}
		}
	}
	return runproof.ParseFixed(string(b), scale)
}

// digestText is a digest as runproof writes it: "sha256:" and 64 lowercase
// hex digits.
type digestText [len(runproof.DigestPrefix) + 64]byte

func digestOf(sum []byte) digestText {
	var d digestText
	copy(d[:], runproof.DigestPrefix)
	hex.Encode(d[len(runproof.DigestPrefix):], sum)
	return d
}

func (d digestText) String() string { return string(d[:]) }

// stepRow is one step as both bundle.json and steps.csv hold it, in the
// units in which they must agree.
type stepRow struct {
	index, inputTokens, outputTokens, tokens int64
	cost, duration                           int64 // microcents, microseconds
	timestamp, stepType, status, contentHash []byte
	inflection                               bool
}

// fold adds the row to a digest of every row, in an unambiguous encoding
// (lengths before strings); buf is scratch space, returned for reuse.
func (r *stepRow) fold(h hash.Hash, buf []byte) []byte {
	buf = buf[:0]
	for _, n := range []int64{r.index, r.inputTokens, r.outputTokens, r.tokens, r.cost, r.duration} {
		buf = binary.AppendVarint(buf, n)
	}
	for _, s := range [][]byte{r.timestamp, r.stepType, r.status, r.contentHash} {
		buf = binary.AppendUvarint(buf, uint64(len(s)))
		buf = append(buf, s...)
	}
	if r.inflection {
		buf = append(buf, 1)
	} else {
		buf = append(buf, 0)
	}
	h.Write(buf)
	return buf
}

// diff names the first column in which two rows differ and gives both
// values, r's first; the column is "" when they agree.
func (r *stepRow) diff(o *stepRow) (column, mine, theirs string) {
	switch {
	case r.index != o.index:
		return "step_index", fmt.Sprint(r.index), fmt.Sprint(o.index)
	case !bytes.Equal(r.timestamp, o.timestamp):
		return "timestamp", string(r.timestamp), string(o.timestamp)
	case !bytes.Equal(r.stepType, o.stepType):
		return "step_type", fmt.Sprintf("%q", r.stepType), fmt.Sprintf("%q", o.stepType)
	case r.inputTokens != o.inputTokens:
		return "input_tokens", fmt.Sprint(r.inputTokens), fmt.Sprint(o.inputTokens)
	case r.outputTokens != o.outputTokens:
		return "output_tokens", fmt.Sprint(r.outputTokens), fmt.Sprint(o.outputTokens)
	case r.tokens != o.tokens:
		return "tokens", fmt.Sprint(r.tokens), fmt.Sprint(o.tokens)
	case r.cost != o.cost:
		return "cost_cents", cents(r.cost), cents(o.cost)
	case r.duration != o.duration:
		return "duration_ms", runproof.FormatFixed(r.duration, runproof.MicrosPerMilli),
			runproof.FormatFixed(o.duration, runproof.MicrosPerMilli)
	case !bytes.Equal(r.status, o.status):
		return "status", string(r.status), string(o.status)
	case r.inflection != o.inflection:
		return "is_inflection", fmt.Sprint(r.inflection), fmt.Sprint(o.inflection)
	case !bytes.Equal(r.contentHash, o.contentHash):
		return "content_hash", string(r.contentHash), string(o.contentHash)
	}
	return "", "", ""
}

// cents writes microcents as a decimal number of cents.
func cents(microcents int64) string {
	return runproof.FormatFixed(microcents, runproof.MicrocentsPerCent)
}

// validStatus reports whether s is a step status.
func validStatus(s []byte) bool {
	switch runproof.StepStatus(s) {
	case runproof.StepOK, runproof.StepWarning, runproof.StepViolation:
		return true
	}
	return false
}
