package verify

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/runproof/runproof/internal/render/csvr"
	"github.com/runproof/runproof/internal/runproof"
)

// maxRecord bounds one CSV record: a step row is a few hundred bytes.
const maxRecord = 4 << 20

// csvReader reads the records encoding/csv's Writer writes (RFC 4180, "\n"
// line ends, fields quoted when needed) into buffers it reuses. encoding/csv's
// Reader allocates a string per record, which a file of millions of steps
// would feel; this one allocates nothing per record.
type csvReader struct {
	r    *bufio.Reader
	line int    // line number (from 1) of the last record's start
	next int    // line number of the next line to read
	buf  []byte // the fields of the last record, back to back
	ends []int  // where each field ends in buf
	long []byte // a line longer than r's buffer
}

func newCSVReader(r io.Reader) *csvReader {
	return &csvReader{r: bufio.NewReaderSize(r, 64<<10), next: 1}
}

// field returns field i of the last record, valid until the next read.
func (c *csvReader) field(i int) []byte {
	start := 0
	if i > 0 {
		start = c.ends[i-1]
	}
	return c.buf[start:c.ends[i]]
}

// read reads the next record; io.EOF when there is none.
func (c *csvReader) read() error {
	c.buf, c.ends = c.buf[:0], c.ends[:0]
	line, err := c.readLine()
	if err != nil {
		return err
	}
	c.line = c.next - 1
	for {
		if len(line) > 0 && line[0] == '"' {
			line = line[1:]
			for {
				i := bytes.IndexByte(line, '"')
				if i < 0 { // the field goes on on the next line
					if c.buf = append(c.buf, line...); len(c.buf) > maxRecord {
						return c.errorf("a record longer than %d bytes", maxRecord)
					}
					if line, err = c.readLine(); err == io.EOF {
						return c.errorf("a quoted field is not closed")
					} else if err != nil {
						return err
					}
					continue
				}
				c.buf = append(c.buf, line[:i]...)
				line = line[i+1:]
				if len(line) > 0 && line[0] == '"' {
					c.buf = append(c.buf, '"')
					line = line[1:]
					continue
				}
				break
			}
		} else {
			i := bytes.IndexAny(line, ",\"\n")
			if i < 0 {
				i = len(line) // the last line, without "\n"
			} else if line[i] == '"' {
				return c.errorf("a quote in an unquoted field")
			}
			c.buf = append(c.buf, line[:i]...)
			line = line[i:]
		}
		if len(c.buf) > maxRecord {
			return c.errorf("a record longer than %d bytes", maxRecord)
		}
		c.ends = append(c.ends, len(c.buf))
		switch {
		case len(line) == 0 || line[0] == '\n':
			return nil
		case line[0] == ',':
			line = line[1:]
		default:
			return c.errorf("%q after a quoted field", line[0])
		}
	}
}

// readLine returns the next line with its "\n" (the last line may have
// none), valid until the next call.
func (c *csvReader) readLine() ([]byte, error) {
	line, err := c.r.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		c.long = append(c.long[:0], line...)
		for err == bufio.ErrBufferFull && len(c.long) <= maxRecord {
			line, err = c.r.ReadSlice('\n')
			c.long = append(c.long, line...)
		}
		if err == bufio.ErrBufferFull {
			return nil, c.errorf("a line longer than %d bytes", maxRecord)
		}
		line = c.long
	}
	if err == io.EOF && len(line) > 0 {
		err = nil
	}
	if err != nil {
		return nil, err
	}
	c.next++
	return line, nil
}

func (c *csvReader) errorf(format string, args ...any) error {
	return &csvError{fmt.Sprintf("line %d: ", c.next-1) + fmt.Sprintf(format, args...)}
}

// csvError is a steps.csv that is not the CSV of steps.
type csvError struct{ msg string }

func (e *csvError) Error() string { return e.msg }

// stepsReader reads the rows of steps.csv as stepRows.
type stepsReader struct {
	csv  *csvReader
	row  stepRow
	rows int64 // rows read
}

// newStepsReader reads and checks the header row.
func newStepsReader(r io.Reader) (*stepsReader, error) {
	c := newCSVReader(r)
	err := c.read()
	if err == io.EOF {
		return nil, &csvError{"the file is empty: it has no header row"}
	} else if err != nil {
		return nil, err
	}
	header := make([]string, len(c.ends))
	for i := range header {
		header[i] = string(c.field(i))
	}
	if !slices.Equal(header, csvr.StepHeader) {
		return nil, &csvError{fmt.Sprintf("the header row is %q, not %q", header, csvr.StepHeader)}
	}
	return &stepsReader{csv: c}, nil
}

// next reads the next row; io.EOF after the last one. The row is valid
// until the next call.
func (s *stepsReader) next() (*stepRow, error) {
	c, r := s.csv, &s.row
	if err := c.read(); err != nil {
		return nil, err
	}
	s.rows++
	if len(c.ends) != len(csvr.StepHeader) {
		return nil, c.errorf("%d fields, not %d", len(c.ends), len(csvr.StepHeader))
	}
	var err error
	for _, f := range []struct {
		dst *int64
		i   int
	}{{&r.index, 0}, {&r.inputTokens, 3}, {&r.outputTokens, 4}, {&r.tokens, 5}} {
		if *f.dst, err = integer(c.field(f.i)); err != nil {
			return nil, c.errorf("%s: %v", csvr.StepHeader[f.i], err)
		}
	}
	if r.cost, err = fixed(c.field(6), runproof.MicrocentsPerCent); err != nil {
		return nil, c.errorf("cost_cents: %v", err)
	}
	if r.duration, err = fixed(c.field(7), runproof.MicrosPerMilli); err != nil {
		return nil, c.errorf("duration_ms: %v", err)
	}
	r.timestamp, r.stepType, r.status, r.contentHash = c.field(1), c.field(2), c.field(8), c.field(10)
	if !validStatus(r.status) {
		return nil, c.errorf("status %q is not ok, warning or violation", r.status)
	}
	switch string(c.field(9)) {
	case "true":
		r.inflection = true
	case "false":
		r.inflection = false
	default:
		return nil, c.errorf("is_inflection %q is not true or false", c.field(9))
	}
	return r, nil
}

// csvFacts is what one pass over steps.csv finds.
type csvFacts struct {
	rows        int64
	first, last int64  // step_index of the first and last row
	inflections int64  // rows with is_inflection true
	upTo        int64  // microcents of the rows up to the first inflection, it included
	digest      []byte // of every row (stepRow.fold)
}

// scanSteps reads steps.csv: its header, then every row, which must follow
// each other by step_index. The error is a *csvError when the file is not
// the CSV of steps.
func scanSteps(r io.Reader) (csvFacts, error) {
	var f csvFacts
	s, err := newStepsReader(r)
	if err != nil {
		return f, err
	}
	h := sha256.New()
	var buf []byte
	for {
		row, err := s.next()
		if errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return f, err
		}
		if f.rows == 0 {
			f.first = row.index
		} else if row.index != f.last+1 {
			return f, s.csv.errorf("step_index %d follows step_index %d: the rows are not contiguous", row.index, f.last)
		}
		f.rows, f.last = f.rows+1, row.index
		if f.inflections == 0 {
			f.upTo += row.cost
		}
		if row.inflection {
			f.inflections++
		}
		buf = row.fold(h, buf)
	}
	f.digest = h.Sum(nil)
	return f, nil
}
