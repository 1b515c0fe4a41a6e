package verify

import (
	"archive/zip"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
)

// ZIP record signatures and sizes (APPNOTE.TXT 4.3).
const (
	localHeaderSig   = 0x04034b50
	localHeaderLen   = 30
	descriptorSig    = 0x08074b50
	endSig           = 0x06054b50
	endLen           = 22
	zip64EndSig      = 0x06064b50
	zip64LocatorSig  = 0x07064b50
	zip64LocatorLen  = 20
	zip64EndFixedLen = 12 // signature and the size of the rest
)

// layout checks that the file holds its members and their directory and
// nothing else: the first member's header at offset 0, each member's
// header, data (and data descriptor) ending where the next begins, the
// central directory right after the last, the end records right after it
// and at the end of the file. A ZIP reader reads the members the
// directory names, wherever they are; bytes outside them would be a
// member only some readers see (a streaming one walks the headers), or a
// page or a script to a program that reads the file as something else.
// It returns "" when the layout holds, else what is wrong.
func layout(r io.ReaderAt, size int64, files []*zip.File) string {
	dir, dirEnd, err := directory(r, size)
	if err != nil {
		return err.Error()
	}
	byOffset := slices.Clone(files)
	slices.SortFunc(byOffset, func(a, b *zip.File) int {
		return int(min(max(offset(a)-offset(b), -1), 1))
	})
	var pos int64
	for _, f := range byOffset {
		var h [localHeaderLen]byte
		if _, err := r.ReadAt(h[:], pos); err != nil || binary.LittleEndian.Uint32(h[:]) != localHeaderSig {
			return fmt.Sprintf("bytes at offset %d, before member %s, belong to no member", pos, f.Name)
		}
		data := pos + localHeaderLen + int64(binary.LittleEndian.Uint16(h[26:])) + int64(binary.LittleEndian.Uint16(h[28:]))
		if data != offset(f) {
			return fmt.Sprintf("a member header at offset %d is not that of %s, the next member the directory names", pos, f.Name)
		}
		pos = data + int64(f.CompressedSize64)
		if f.Flags&0x8 != 0 { // a data descriptor follows the data
			var sig [4]byte
			if _, err := r.ReadAt(sig[:], pos); err != nil {
				return fmt.Sprintf("member %s: its data descriptor cannot be read: %v", f.Name, err)
			}
			if binary.LittleEndian.Uint32(sig[:]) == descriptorSig {
				pos += 4
			}
			pos += 4 + 8 // CRC-32 and the two sizes
			if f.CompressedSize64 >= 0xffffffff || f.UncompressedSize64 >= 0xffffffff {
				pos += 8 // sizes of 8 bytes each
			}
		}
	}
	switch {
	case pos != dir:
		return fmt.Sprintf("%d bytes between the last member and the central directory belong to no member", dir-pos)
	case dirEnd != size:
		return fmt.Sprintf("%d bytes after the end of the central directory belong to it", size-dirEnd)
	}
	return ""
}

// offset is where a member's data starts.
func offset(f *zip.File) int64 {
	o, err := f.DataOffset()
	if err != nil {
		return -1
	}
	return o
}

// directory returns where the central directory starts, and where the
// records that end it end: the end of the file.
func directory(r io.ReaderAt, size int64) (start, end int64, err error) {
	var e [endLen]byte
	endAt := size - endLen
	if _, err := r.ReadAt(e[:], endAt); err != nil || binary.LittleEndian.Uint32(e[:]) != endSig {
		return 0, 0, fmt.Errorf("the file does not end with the end of a ZIP central directory")
	}
	dirSize, dirAt := int64(binary.LittleEndian.Uint32(e[12:])), int64(binary.LittleEndian.Uint32(e[16:]))
	dirEnd := endAt
	if binary.LittleEndian.Uint16(e[10:]) == 0xffff || dirSize == 0xffffffff || dirAt == 0xffffffff { // ZIP64
		var loc [zip64LocatorLen]byte
		locAt := endAt - zip64LocatorLen
		if _, err := r.ReadAt(loc[:], locAt); err != nil || binary.LittleEndian.Uint32(loc[:]) != zip64LocatorSig {
			return 0, 0, fmt.Errorf("the ZIP64 end of the central directory cannot be found")
		}
		recAt := int64(binary.LittleEndian.Uint64(loc[8:]))
		var rec [56]byte
		if _, err := r.ReadAt(rec[:], recAt); err != nil || binary.LittleEndian.Uint32(rec[:]) != zip64EndSig {
			return 0, 0, fmt.Errorf("the ZIP64 end of the central directory cannot be read")
		}
		if recEnd := recAt + zip64EndFixedLen + int64(binary.LittleEndian.Uint64(rec[4:])); recEnd != locAt {
			return 0, 0, fmt.Errorf("%d bytes lie between the ZIP64 end records", locAt-recEnd)
		}
		dirSize, dirAt, dirEnd = int64(binary.LittleEndian.Uint64(rec[40:])), int64(binary.LittleEndian.Uint64(rec[48:])), recAt
	}
	// The directory ends where its end records begin; the offsets it
	// records are from the start of the ZIP, which readers find from there.
	if at := dirEnd - dirSize; at != dirAt {
		return 0, 0, fmt.Errorf("%d bytes before the first member belong to no member", at-dirAt)
	}
	return dirAt, size, nil
}
