package verify

import (
	"archive/zip"
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/klauspost/compress/flate"
)

// ZIP record signatures and sizes (APPNOTE.TXT 4.3).
const (
	localHeaderSig  = 0x04034b50
	localHeaderLen  = 30
	descriptorSig   = 0x08074b50
	centralSig      = 0x02014b50
	centralLen      = 46
	endSig          = 0x06054b50
	endLen          = 22
	zip64EndSig     = 0x06064b50
	zip64EndLen     = 56 // with no extensible data
	zip64LocatorSig = 0x07064b50
	zip64LocatorLen = 20
	zip64ExtraID    = 0x0001
	extendedTimeID  = 0x5455 // the modification time in Unix seconds
	flagDescriptor  = 0x8    // CRC-32 and sizes follow the data
)

// layout checks that the file holds its members and their directory and
// nothing else, each said once: from offset 0, each member's local header
// (the same name, method, flags, time, CRC-32 and sizes as its directory
// entry), its data and its data descriptor (holding its CRC-32 and
// sizes), back to back; right after the last, the directory's entries,
// without comments, filling the size the end record gives; then the end
// records, at the end of the file. A ZIP reader reads the members the
// directory names, wherever they are: bytes outside them would be a
// member only some readers see (a streaming one walks the local headers),
// or a page or a script to a program that reads the file as something
// else. (A deflated member's data is checked to end where its stream
// does as it is read: exactInflate.) It returns "" when the layout holds,
// else what is wrong.
func layout(r io.ReaderAt, size int64, files []*zip.File) string {
	dir, dirSize, err := directory(r, size)
	if err != nil {
		return err.Error()
	}
	if why := entries(r, dir, dirSize, len(files)); why != "" {
		return why
	}
	byOffset := slices.Clone(files)
	for _, f := range byOffset {
		if _, err := f.DataOffset(); err != nil {
			return fmt.Sprintf("the local header of member %q cannot be read: %v", f.Name, err)
		}
	}
	slices.SortFunc(byOffset, func(a, b *zip.File) int {
		oa, _ := a.DataOffset()
		ob, _ := b.DataOffset()
		return int(min(max(oa-ob, -1), 1))
	})
	var pos int64
	for _, f := range byOffset {
		next, why := member(r, pos, f)
		if why != "" {
			return why
		}
		pos = next
	}
	switch {
	case pos < dir:
		return fmt.Sprintf("%d bytes between the last member and the central directory belong to no member", dir-pos)
	case pos > dir:
		return fmt.Sprintf("the last member runs %d bytes into the central directory", pos-dir)
	}
	return ""
}

// member checks the member f whose local header should be at pos, and
// returns where what follows it should begin.
func member(r io.ReaderAt, pos int64, f *zip.File) (next int64, why string) {
	var h [localHeaderLen]byte
	if _, err := r.ReadAt(h[:], pos); err != nil || binary.LittleEndian.Uint32(h[:]) != localHeaderSig {
		return 0, fmt.Sprintf("bytes at offset %d, before member %q, belong to no member", pos, f.Name)
	}
	le := binary.LittleEndian
	nameLen, extraLen := int(le.Uint16(h[26:])), int(le.Uint16(h[28:]))
	tail := make([]byte, nameLen+extraLen)
	if _, err := r.ReadAt(tail, pos+localHeaderLen); err != nil {
		return 0, fmt.Sprintf("the local header of member %q at offset %d is cut short", f.Name, pos)
	}
	name, extra := tail[:nameLen], tail[nameLen:]
	data := pos + localHeaderLen + int64(len(tail))
	if off, _ := f.DataOffset(); off != data {
		return 0, fmt.Sprintf("the member header at offset %d is not that of %q, the next member the directory names", pos, f.Name)
	}
	mtime, mdate := f.ModifiedTime, f.ModifiedDate // the MS-DOS fields both headers hold
	switch {
	case string(name) != f.Name:
		return 0, fmt.Sprintf("member %q is named %q in its local header", f.Name, name)
	case le.Uint16(h[4:]) != f.ReaderVersion, le.Uint16(h[6:]) != f.Flags, le.Uint16(h[8:]) != f.Method, le.Uint16(h[10:]) != mtime, le.Uint16(h[12:]) != mdate,
		!bytes.Equal(extraField(extra, extendedTimeID), extraField(f.Extra, extendedTimeID)):
		return 0, fmt.Sprintf("the local header of member %q differs from its directory entry", f.Name)
	}
	end := data + int64(f.CompressedSize64)
	if end < data { // past 2^63
		return 0, fmt.Sprintf("member %q declares an impossible size", f.Name)
	}
	if f.Flags&flagDescriptor == 0 {
		if !localSizes(h, extra, f) {
			return 0, fmt.Sprintf("the local header of member %q gives another CRC-32 or size than its directory entry", f.Name)
		}
		return end, ""
	}
	n, ok := descriptor(r, end, f, extraField(extra, zip64ExtraID) != nil)
	if !ok {
		return 0, fmt.Sprintf("member %q has no data descriptor holding its CRC-32 and sizes at offset %d", f.Name, end)
	}
	return end + n, ""
}

// localSizes reports whether a local header (and its ZIP64 extra field)
// gives the CRC-32 and sizes of f.
func localSizes(h [localHeaderLen]byte, extra []byte, f *zip.File) bool {
	le := binary.LittleEndian
	csize, usize := uint64(le.Uint32(h[18:])), uint64(le.Uint32(h[22:]))
	if csize == 0xffffffff || usize == 0xffffffff {
		x := extraField(extra, zip64ExtraID)
		if usize == 0xffffffff && len(x) >= 8 {
			usize, x = le.Uint64(x), x[8:]
		}
		if csize == 0xffffffff && len(x) >= 8 {
			csize = le.Uint64(x)
		}
	}
	return le.Uint32(h[14:]) == f.CRC32 && csize == f.CompressedSize64 && usize == f.UncompressedSize64
}

// descriptor reads the data descriptor of f at pos, with or without its
// signature, with sizes of 4 bytes or (zip64) 8, and returns its length
// and whether it holds f's CRC-32 and sizes.
func descriptor(r io.ReaderAt, pos int64, f *zip.File, zip64 bool) (int64, bool) {
	var d [24]byte
	n, _ := r.ReadAt(d[:], pos)
	b := d[:n]
	le := binary.LittleEndian
	var lead int64
	if len(b) >= 4 && le.Uint32(b) == descriptorSig {
		b, lead = b[4:], 4
	}
	switch {
	case zip64 && len(b) >= 20 && le.Uint32(b) == f.CRC32 && le.Uint64(b[4:]) == f.CompressedSize64 && le.Uint64(b[12:]) == f.UncompressedSize64:
		return lead + 20, true
	case !zip64 && len(b) >= 12 && le.Uint32(b) == f.CRC32 && uint64(le.Uint32(b[4:])) == f.CompressedSize64 && uint64(le.Uint32(b[8:])) == f.UncompressedSize64:
		return lead + 12, true
	}
	return 0, false
}

// extraField returns the data of the extra field id, or nil.
func extraField(extra []byte, id uint16) []byte {
	for len(extra) >= 4 {
		fid, n := binary.LittleEndian.Uint16(extra), int(binary.LittleEndian.Uint16(extra[2:]))
		if len(extra) < 4+n {
			return nil
		}
		if fid == id {
			return extra[4 : 4+n]
		}
		extra = extra[4+n:]
	}
	return nil
}

// directory returns where the central directory starts and its size,
// checking that its end records end the file and follow it, as Go's
// reader reads them.
func directory(r io.ReaderAt, size int64) (start, length int64, err error) {
	le := binary.LittleEndian
	var e [endLen]byte
	endAt := size - endLen
	if _, err := r.ReadAt(e[:], endAt); err != nil || le.Uint32(e[:]) != endSig {
		return 0, 0, errors.New("the file does not end with the end record of a ZIP central directory")
	}
	records, dirSize, dirAt := le.Uint16(e[10:]), int64(le.Uint32(e[12:])), int64(le.Uint32(e[16:]))
	// A bundle is one file: the numbers of a ZIP split over disks, which
	// archive/zip ignores but unzip heeds, are those of a single disk.
	if le.Uint16(e[4:]) != 0 || le.Uint16(e[6:]) != 0 || le.Uint16(e[8:]) != records {
		return 0, 0, errors.New("the end record describes a ZIP split over several disks: a bundle is one file")
	}
	dirEnd := endAt
	if records == 0xffff || dirSize == 0xffff || dirAt == 0xffffffff { // ZIP64, as archive/zip decides
		var loc [zip64LocatorLen]byte
		locAt := endAt - zip64LocatorLen
		if _, err := r.ReadAt(loc[:], locAt); err != nil || le.Uint32(loc[:]) != zip64LocatorSig ||
			le.Uint32(loc[4:]) != 0 || le.Uint32(loc[16:]) != 1 {
			return 0, 0, errors.New("the ZIP64 end records cannot be found before the end record")
		}
		recAt := int64(le.Uint64(loc[8:]))
		var rec [zip64EndLen]byte
		if recAt != locAt-zip64EndLen {
			return 0, 0, fmt.Errorf("the ZIP64 end record is not right before its locator")
		}
		if _, err := r.ReadAt(rec[:], recAt); err != nil || le.Uint32(rec[:]) != zip64EndSig || le.Uint64(rec[4:]) != zip64EndLen-12 {
			return 0, 0, errors.New("the ZIP64 end record cannot be read, or holds more than its fields")
		}
		if le.Uint32(rec[16:]) != 0 || le.Uint32(rec[20:]) != 0 || le.Uint64(rec[24:]) != le.Uint64(rec[32:]) {
			return 0, 0, errors.New("the ZIP64 end record describes a ZIP split over several disks: a bundle is one file")
		}
		dirSize, dirAt, dirEnd = int64(le.Uint64(rec[40:])), int64(le.Uint64(rec[48:])), recAt
	}
	switch at := dirEnd - dirSize; {
	case dirSize < 0 || at < 0:
		return 0, 0, fmt.Errorf("the central directory is said to be %d bytes long, more than the file before its end record", dirSize)
	case at > dirAt:
		return 0, 0, fmt.Errorf("%d bytes before the first member belong to no member", at-dirAt)
	case at < dirAt:
		return 0, 0, fmt.Errorf("the end record puts the central directory at offset %d, inside it (at %d)", dirAt, at)
	}
	return dirAt, dirSize, nil
}

// directoryOffset returns where archive/zip starts reading the central
// directory of the file: the offset the last end record gives (that of
// the ZIP64 end record when it says so), found as archive/zip finds it;
// false when there is none, which zip.NewReader then reports.
func directoryOffset(r io.ReaderAt, size int64) (int64, bool) {
	le := binary.LittleEndian
	tail := min(size, endLen+0xffff)
	b := make([]byte, tail)
	if _, err := r.ReadAt(b, size-tail); err != nil {
		return 0, false
	}
	for i := len(b) - endLen; i >= 0; i-- {
		if le.Uint32(b[i:]) != endSig || i+endLen+int(le.Uint16(b[i+20:])) > len(b) {
			continue
		}
		e := b[i:]
		at := int64(le.Uint32(e[16:]))
		if le.Uint16(e[8:]) == 0xffff || le.Uint16(e[10:]) == 0xffff || le.Uint32(e[12:]) == 0xffffffff || at == 0xffffffff {
			endAt := size - tail + int64(i)
			var loc [zip64LocatorLen]byte
			if _, err := r.ReadAt(loc[:], endAt-zip64LocatorLen); err == nil && le.Uint32(loc[:]) == zip64LocatorSig {
				var rec [zip64EndLen]byte
				if _, err := r.ReadAt(rec[:], int64(le.Uint64(loc[8:]))); err == nil && le.Uint32(rec[:]) == zip64EndSig {
					at = int64(le.Uint64(rec[48:]))
				}
			}
		}
		if at < 0 || at > size {
			return 0, false
		}
		return at, true
	}
	return 0, false
}

// entries checks that the central directory, size bytes at dir, is n
// entries without comments and nothing else.
func entries(r io.ReaderAt, dir, size int64, n int) string {
	le := binary.LittleEndian
	pos, end := dir, dir+size
	for i := range n {
		var h [centralLen]byte
		if _, err := r.ReadAt(h[:], pos); err != nil || le.Uint32(h[:]) != centralSig {
			return fmt.Sprintf("central directory entry %d of %d cannot be read at offset %d", i+1, n, pos)
		}
		switch {
		case le.Uint16(h[32:]) != 0:
			return fmt.Sprintf("central directory entry %d has a comment: a bundle's members have none", i+1)
		case le.Uint16(h[34:]) != 0:
			return fmt.Sprintf("central directory entry %d says its member starts on disk %d: a bundle is one file", i+1, le.Uint16(h[34:]))
		case le.Uint16(h[36:]) != 0:
			return fmt.Sprintf("central directory entry %d carries internal file attributes: a bundle's members have none", i+1)
		}
		pos += centralLen + int64(le.Uint16(h[28:])) + int64(le.Uint16(h[30:]))
	}
	switch {
	case pos < end:
		return fmt.Sprintf("%d bytes at the end of the central directory belong to no entry", end-pos)
	case pos > end:
		return fmt.Sprintf("the central directory's entries run %d bytes past its size", pos-end)
	}
	return ""
}

// exactInflate inflates a deflated member's data, r, and fails its read
// when the deflate stream ends before the data does: bytes after it,
// which readers skip, would be a member only a streaming reader sees.
func exactInflate(r io.Reader) io.ReadCloser {
	section, ok := r.(*io.SectionReader)
	if !ok { // not as archive/zip hands data over: no length to check against
		return flate.NewReader(r)
	}
	counted := &countingReader{r: section}
	buf := bufio.NewReader(counted) // an io.ByteReader: the inflater reads no further than its stream
	return &exactReader{ReadCloser: flate.NewReader(buf), buf: buf, counted: counted, size: section.Size()}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

type exactReader struct {
	io.ReadCloser
	buf     *bufio.Reader
	counted *countingReader
	size    int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	n, err := e.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) {
		if used := e.counted.n - int64(e.buf.Buffered()); used != e.size {
			return n, fmt.Errorf("%d bytes after the member's deflate stream belong to nothing", e.size-used)
		}
	}
	return n, err
}
