// Package bundlezip writes the signed ZIP bundle of an export
// (docs/integrity.md, "The ZIP bundle"):
//
//	manifest.json   what was exported and every other file's size and sha256 (RFC 8785 JSON)
//	manifest.sig    the raw Ed25519 signature of manifest.json
//	SHA256SUMS      the digests in `sha256sum -c` format
//	bundle.json     the bundle, canonical JSON
//	steps.csv       one row per step
//	report.pdf      the report for the bundle type
//	proof.json      the inclusion proof of the sealed manifest in the export ledger, when there is one
//
// The same members and manifest give the same bytes: entries are written
// in a fixed order with the export's creation time as their time. Writing
// takes two steps, Seal then Sealed.Write, so that the signed manifest can
// go into the ledger and its proof into the ZIP: the manifest cannot hold
// its own ledger index, proof.json does. A Packer does a member's share of both
// ahead of them, so that members can be compressed while others are made.
package bundlezip

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/flate"

	"github.com/runproof/runproof/internal/runproof"
)

// Member and manifest file names.
const (
	ManifestName  = "manifest.json"
	SignatureName = "manifest.sig"
	SumsName      = "SHA256SUMS"
	BundleName    = "bundle.json"
	StepsName     = "steps.csv"
	ReportName    = "report.pdf"
	ProofName     = "proof.json"
)

// SchemaVersion is the manifest's format version.
const SchemaVersion = 1

// Manifest says what the ZIP holds. It is signed; every other file is
// listed in Files with its digest.
type Manifest struct {
	SchemaVersion int                 `json:"schema_version"`
	ExportID      string              `json:"export_id"`
	TenantID      string              `json:"tenant_id"`
	BundleID      string              `json:"bundle_id"`
	BundleType    runproof.BundleType `json:"bundle_type"`
	CreatedAt     string              `json:"created_at"`
	KeyID         string              `json:"key_id"`
	Population    Population          `json:"population"`
	Files         []File              `json:"files"`
}

// Population is what the export asked for and how many records answered,
// so that an auditor can judge completeness from the bundle alone.
type Population struct {
	Scope          runproof.ExportScope `json:"scope"`
	RunID          string               `json:"run_id"`
	IncidentID     string               `json:"incident_id,omitempty"`
	PeriodStart    string               `json:"period_start,omitempty"`
	PeriodEnd      string               `json:"period_end,omitempty"`
	IncludeSteps   bool                 `json:"include_steps"`
	IncludeContent bool                 `json:"include_content"`
	Runs           int64                `json:"runs"`
	Steps          int64                `json:"steps"`
	StepsOmitted   int64                `json:"steps_omitted"`
	Incidents      int64                `json:"incidents"`
	FirstStepIndex *int64               `json:"first_step_index,omitempty"`
	LastStepIndex  *int64               `json:"last_step_index,omitempty"`
	Truncated      bool                 `json:"truncated"` // always false: runproof never cuts silently
}

// File is one file the manifest vouches for.
type File struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"` // hex
}

// Signer signs the manifest.
type Signer interface {
	Sign(msg []byte) []byte
}

// Member is a file to put in the ZIP.
type Member struct {
	Name   string
	Data   []byte  // nil once packed by a Packer
	packed *packed // set by pack and Packer
}

// packed is a member deflated and hashed.
type packed struct {
	file     File
	crc      uint32
	deflated Spill
}

// A Spill keeps a member, deflated, until the ZIP is written: memory by
// default (NewPacker), a temporary file for a member that can be large
// (NewPackerTo). Flush makes sure all that was written is kept (a full
// disk fails the member there, before the ZIP is sealed); Reader reads it
// back, Size bytes.
type Spill interface {
	io.Writer
	Flush() error
	Reader() io.Reader
	Size() int64
}

// memorySpill is the default Spill.
type memorySpill struct{ bytes.Buffer }

func (m *memorySpill) Flush() error      { return nil }
func (m *memorySpill) Reader() io.Reader { return bytes.NewReader(m.Bytes()) }
func (m *memorySpill) Size() int64       { return int64(m.Len()) }

// pack deflates and hashes m (dropping its Data) unless a Packer did so
// already, so that Seal and Sealed.Write only copy what was made.
func pack(m Member) (Member, error) {
	if m.packed != nil {
		return m, nil
	}
	p, err := NewPacker(m.Name)
	if err != nil {
		return m, err
	}
	p.Write(m.Data) // never fails: it writes to memory
	return p.Member()
}

// Packer packs a member as it is written, as pack does, without the
// member's bytes being held whole.
type Packer struct {
	name     string
	deflated Spill
	zw       *flate.Writer
	sha      hash.Hash
	crc      hash.Hash32
	n        int64
}

// deflaters keeps flate writers for reuse: each holds over a megabyte of
// tables, which a ZIP's every member would otherwise allocate anew.
var deflaters sync.Pool

// NewPacker returns a Packer of the member name, which keeps the member
// in memory.
func NewPacker(name string) (*Packer, error) { return NewPackerTo(name, &memorySpill{}) }

// NewPackerTo returns a Packer of the member name, which keeps the member
// in spill.
func NewPackerTo(name string, spill Spill) (*Packer, error) {
	p := &Packer{name: name, deflated: spill, sha: sha256.New(), crc: crc32.NewIEEE()}
	if zw, ok := deflaters.Get().(*flate.Writer); ok {
		zw.Reset(spill)
		p.zw = zw
		return p, nil
	}
	var err error
	p.zw, err = flate.NewWriter(spill, level)
	return p, err
}

// Write adds b to the member.
func (p *Packer) Write(b []byte) (int, error) {
	if p.zw == nil {
		return 0, errors.New("bundlezip: write to a member packed already")
	}
	p.sha.Write(b)
	p.crc.Write(b)
	p.n += int64(len(b))
	return p.zw.Write(b)
}

// Member ends the member and returns it, packed.
func (p *Packer) Member() (Member, error) {
	if p.zw == nil {
		return Member{}, errors.New("bundlezip: member packed already")
	}
	if err := p.zw.Close(); err != nil {
		return Member{}, err
	}
	if err := p.deflated.Flush(); err != nil {
		return Member{}, err
	}
	p.zw.Reset(io.Discard) // not to keep the member's bytes while pooled
	deflaters.Put(p.zw)
	p.zw = nil
	file := File{Name: p.name, Size: p.n, SHA256: hex.EncodeToString(p.sha.Sum(nil))}
	return Member{Name: p.name, packed: &packed{file: file, crc: p.crc.Sum32(), deflated: p.deflated}}, nil
}

// Sealed is a signed manifest and the members it vouches for, ready to
// write.
type Sealed struct {
	Manifest     Manifest // as signed, with every member's digest
	ManifestJSON []byte   // manifest.json: the bytes signed
	Signature    []byte   // manifest.sig
	members      []Member
}

// Seal completes the manifest m with the members' digests and signs its
// RFC 8785 form.
func Seal(m Manifest, members []Member, signer Signer) (Sealed, error) {
	m.SchemaVersion = SchemaVersion
	m.Files = nil
	members = slices.Clone(members)
	for i, f := range members {
		f, err := pack(f) // a no-op for a member packed already
		if err != nil {
			return Sealed{}, err
		}
		members[i] = f
		m.Files = append(m.Files, f.packed.file)
	}
	manifest, err := runproof.Canonical(m)
	if err != nil {
		return Sealed{}, err
	}
	return Sealed{Manifest: m, ManifestJSON: manifest, Signature: signer.Sign(manifest), members: members}, nil
}

// Write writes the ZIP: the manifest, its signature, SHA256SUMS, the
// members in order, then proof as proof.json (if any). SHA256SUMS lists
// every file but manifest.sig and itself.
func (s Sealed) Write(w io.Writer, proof []byte) error {
	var sums strings.Builder
	for _, f := range append(slices.Clone(s.Manifest.Files), describe(Member{Name: ManifestName, Data: s.ManifestJSON})) {
		fmt.Fprintf(&sums, "%s  %s\n", f.SHA256, f.Name)
	}
	if proof != nil {
		fmt.Fprintf(&sums, "%s  %s\n", describe(Member{Name: ProofName, Data: proof}).SHA256, ProofName)
	}
	modified, err := time.Parse(time.RFC3339Nano, s.Manifest.CreatedAt)
	if err != nil {
		return fmt.Errorf("bundlezip: created_at: %w", err)
	}
	all := append([]Member{{Name: ManifestName, Data: s.ManifestJSON}, {Name: SignatureName, Data: s.Signature},
		{Name: SumsName, Data: []byte(sums.String())}}, s.members...)
	if proof != nil {
		all = append(all, Member{Name: ProofName, Data: proof})
	}
	zw := zip.NewWriter(w)
	for _, f := range all {
		f, err := pack(f)
		if err != nil {
			return err
		}
		p := f.packed
		h := &zip.FileHeader{Name: f.Name, Method: zip.Deflate, Modified: modified.UTC(), CRC32: p.crc,
			CompressedSize64: uint64(p.deflated.Size()), UncompressedSize64: uint64(p.file.Size)}
		//lint:ignore SA1019 CreateRaw writes the MS-DOS fields as given and ignores Modified
		h.ModifiedDate, h.ModifiedTime = dosTime(modified.UTC())
		h.Extra = extendedTime(modified)
		fw, err := zw.CreateRaw(h)
		if err != nil {
			return err
		}
		if n, err := io.Copy(fw, p.deflated.Reader()); err != nil {
			return err
		} else if n != p.deflated.Size() {
			return fmt.Errorf("bundlezip: %s: %d bytes kept of %d deflated", f.Name, n, p.deflated.Size())
		}
	}
	return zw.Close()
}

// dosTime is t in the MS-DOS date and time fields of a ZIP header, which
// CreateRaw writes as they are (CreateHeader fills them from Modified).
// unzip and zipinfo show them; a time before 1980 is 1980-01-01.
func dosTime(t time.Time) (date, clock uint16) {
	if t.Year() < 1980 {
		t = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	date = uint16(t.Year()-1980)<<9 | uint16(t.Month())<<5 | uint16(t.Day())
	clock = uint16(t.Hour())<<11 | uint16(t.Minute())<<5 | uint16(t.Second()/2)
	return date, clock
}

// extendedTime is the extended timestamp field of a ZIP header (0x5455,
// the modification time in Unix seconds), which says that the time is UTC;
// without it unzip reads the MS-DOS time as local.
func extendedTime(t time.Time) []byte {
	b := []byte{0x55, 0x54, 5, 0, 1, 0, 0, 0, 0}
	binary.LittleEndian.PutUint32(b[5:], uint32(t.Unix()))
	return b
}

// level is the deflate level of every member: 6, as `zip -6`, with the
// faster of the two Go deflate implementations. Its output depends only on
// the input (and the library's version), so that the same members give the
// same ZIP.
const level = 6

func describe(f Member) File {
	sum := sha256.Sum256(f.Data)
	return File{Name: f.Name, Size: int64(len(f.Data)), SHA256: hex.EncodeToString(sum[:])}
}
