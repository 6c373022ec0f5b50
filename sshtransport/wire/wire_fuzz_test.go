package wire

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/zsync-dev/zsync/zfs"
)

// The fuzz targets of the wire format. Their seeds are both f.Add calls and
// files under testdata/fuzz/<target>/, so a plain `go test` runs every one
// of them as an ordinary test.

// fuzzFrame builds a frame with an announced length n and payload p (n and
// len(p) may disagree: truncated and overlong frames).
func fuzzFrame(t FrameType, n uint32, p []byte) []byte {
	b := make([]byte, FrameHeaderLen, FrameHeaderLen+len(p))
	b[0] = byte(t)
	binary.BigEndian.PutUint32(b[1:], n)
	return append(b, p...)
}

func fuzzFrameOf(t FrameType, p []byte) []byte { return fuzzFrame(t, uint32(len(p)), p) }

// FuzzReadFrame decodes a byte stream frame by frame. Properties: no
// panic; every error is io.EOF or wraps ErrProtocol (the source is a
// bytes.Reader: there is no other failure); an accepted frame is of a
// known type, within its limit, and exactly as long as it announced; and
// writing it back with WriteFrame (and WriteFramed) reproduces the bytes
// it was read from (round trip). Independently, the first byte and the rest
// of the input as a type and a payload: WriteFrame refuses them exactly
// when the type is unknown or the payload over its limit, and otherwise
// ReadFrame gives them back identically.
func FuzzReadFrame(f *testing.F) {
	for _, s := range [][]byte{
		fuzzFrameOf(FrameRequest, []byte(`{"op":"list","args":{"roots":["tank"]}}`)),
		fuzzFrameOf(FrameResponse, []byte(`{"result":[],"more":true}`)),
		fuzzFrameOf(FrameEnd, []byte(`{}`)),
		fuzzFrameOf(FrameError, []byte(`{"kinds":["protocol"],"message":"bad"}`)),
		append(fuzzFrameOf(FrameData, []byte("abc")), fuzzFrameOf(FrameCancel, nil)...),
		fuzzFrameOf(FrameZData, []byte{0x28, 0xb5, 0x2f, 0xfd}),
		fuzzFrame(FrameData, MaxDataPayload+1, nil),
		fuzzFrame(FrameZData, MaxDataPayload+1, []byte("x")),
		fuzzFrame(FrameRequest, MaxControlPayload+1, nil),
		fuzzFrame(FrameRequest, 0xffffffff, []byte("{")),
		fuzzFrame(FrameCancel, 1, []byte{0}),
		fuzzFrame(FrameRequest, 100, []byte(`{"op":`)),
		fuzzFrame(FrameType('!'), 0, nil),
		fuzzFrame(FrameType(0), 0, nil),
		{'Q', 0, 0},
		{'D'},
		[]byte("bash: zsync: command not found\n"),
		[]byte("ZSYNC-SERVE 1 v1.0\n"),
		{},
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		small := make([]byte, 0, 64)
		for i := 0; i < 32; i++ {
			start := len(data) - r.Len()
			buf := small
			if i%2 == 1 {
				buf = nil
			}
			ft, p, err := ReadFrame(r, buf)
			if err != nil {
				if err != io.EOF && !errors.Is(err, ErrProtocol) {
					t.Fatalf("error %v is neither io.EOF nor ErrProtocol", err)
				}
				if err == io.EOF && start != len(data) {
					t.Fatalf("io.EOF with %d bytes unread", len(data)-start)
				}
				break
			}
			limit, ok := ft.MaxPayload()
			if !ok || len(p) > limit {
				t.Fatalf("accepted a %s frame of %d bytes", ft, len(p))
			}
			consumed := data[start : len(data)-r.Len()]
			if n := binary.BigEndian.Uint32(consumed[1:FrameHeaderLen]); int(n) != len(p) {
				t.Fatalf("a frame announcing %d bytes read as %d", n, len(p))
			}
			var w bytes.Buffer
			if err := WriteFrame(&w, ft, p); err != nil {
				t.Fatalf("WriteFrame refuses the %s frame it read: %v", ft, err)
			}
			if !bytes.Equal(w.Bytes(), consumed) {
				t.Fatalf("round trip: read %q, wrote back %q", consumed, w.Bytes())
			}
			framed := append(make([]byte, FrameHeaderLen), p...)
			w.Reset()
			if err := WriteFramed(&w, ft, framed); err != nil || !bytes.Equal(w.Bytes(), consumed) {
				t.Fatalf("WriteFramed: %q, %v; want %q", w.Bytes(), err, consumed)
			}
		}

		if len(data) == 0 {
			return
		}
		ft, payload := FrameType(data[0]), data[1:]
		var w bytes.Buffer
		err := WriteFrame(&w, ft, payload)
		limit, known := ft.MaxPayload()
		if want := known && len(payload) <= limit; (err == nil) != want {
			t.Fatalf("WriteFrame(%s, %d bytes) = %v; known %v, limit %d", ft, len(payload), err, known, limit)
		}
		if err != nil {
			if !errors.Is(err, ErrProtocol) || w.Len() != 0 {
				t.Fatalf("a refused WriteFrame wrote %d bytes, error %v", w.Len(), err)
			}
			return
		}
		gt, gp, err := ReadFrame(&w, nil)
		if err != nil || gt != ft || !bytes.Equal(gp, payload) {
			t.Fatalf("round trip of a %s frame of %d bytes: %s, %d bytes, %v", ft, len(payload), gt, len(gp), err)
		}
		if _, _, err := ReadFrame(&w, nil); err != io.EOF {
			t.Fatalf("after the frame: %v, want io.EOF", err)
		}
	})
}

// validator is every argument struct.
type validator interface{ Validate() error }

// newArgs returns a fresh value of every argument struct, by op.
func newArgs() map[string]validator {
	return map[string]validator{
		OpList: &ListArgs{}, OpGet: &GetArgs{}, OpHolds: &HoldsArgs{}, OpHold: &HoldArgs{},
		OpBookmark: &BookmarkArgs{}, OpDestroySnapshots: &DestroySnapshotsArgs{},
		OpDestroyBookmarks: &DestroyBookmarksArgs{}, OpCreate: &CreateArgs{}, OpSet: &SetArgs{},
		OpRename: &RenameArgs{}, OpSend: &SendArgs{}, OpReceive: &ReceiveArgs{},
		OpAbortReceive: &DatasetArgs{}, OpDecodeResumeToken: &TokenArgs{}, OpSnapshotDigest: &DigestArgs{}, OpPoolErrors: &DatasetArgs{},
	}
}

// Every name zfs would get, by kind, from an accepted argument struct.
type fuzzNames struct {
	datasets, snapshots, bookmarks, versions, components, tags, props []string
	values                                                            []string
}

func namesOf(v validator) fuzzNames {
	var n fuzzNames
	vals := func(m map[string]string) {
		for k, v := range m {
			n.props = append(n.props, k)
			n.values = append(n.values, v)
		}
	}
	any := func(s string) {
		if strings.ContainsAny(s, "@#") {
			n.versions = append(n.versions, s)
		} else {
			n.datasets = append(n.datasets, s)
		}
	}
	switch a := v.(type) {
	case *ListArgs:
		n.datasets = a.Roots
		n.props = a.Options.UserProps
	case *GetArgs:
		for _, s := range a.Names {
			any(s)
		}
		n.props = a.Props
	case *HoldsArgs:
		n.snapshots = a.Snaps
	case *HoldArgs:
		n.snapshots, n.tags = a.Snaps, []string{a.Tag}
	case *BookmarkArgs:
		n.versions, n.bookmarks = []string{a.Source}, []string{a.Bookmark}
	case *DestroySnapshotsArgs:
		n.datasets, n.components = []string{a.Dataset}, a.Names
	case *DestroyBookmarksArgs:
		n.bookmarks = a.Bookmarks
	case *CreateArgs:
		n.datasets = []string{a.Name}
		vals(a.Props)
	case *SetArgs:
		any(a.Name)
		vals(a.Props)
	case *RenameArgs:
		any(a.From)
		any(a.To)
	case *SendArgs:
		if a.Options.ResumeToken == "" {
			n.snapshots = []string{a.Options.To}
			if a.Options.From != "" {
				n.versions = []string{a.Options.From}
			}
		}
	case *ReceiveArgs:
		any(a.Options.Target)
		vals(a.Options.Set)
		n.props = append(n.props, a.Options.Exclude...)
	case *DatasetArgs:
		n.datasets = []string{a.Dataset}
	}
	return n
}

// checkName is what every name zfs gets must be, whatever its kind: not an
// option, no control character, space-free at its ends, no '%' (zfs's
// temporary names), no "." or ".." component, at most 255 bytes.
func checkName(t *testing.T, kind, s string) {
	t.Helper()
	if s == "" || len(s) > zfs.MaxNameLen || s[0] == '-' || strings.Contains(s, "%") {
		t.Fatalf("accepted %s %q", kind, s)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			t.Fatalf("accepted %s %q with byte 0x%02x", kind, s, c)
		}
	}
	for _, c := range strings.FieldsFunc(s, func(r rune) bool { return r == '/' || r == '@' || r == '#' }) {
		if c == "." || c == ".." {
			t.Fatalf("accepted %s %q with a %q component", kind, s, c)
		}
	}
}

// FuzzDecodeMessages decodes a payload strictly into the request, the
// response, the end status and every argument struct. Properties: no
// panic; every failure wraps ErrProtocol; an argument struct that decodes
// and passes Validate has only names zfs accepts (each checked again here
// by kind, and by checkName), property names without '=' ',' or blanks,
// values without control characters, and encodes to JSON that decodes
// strictly to the same value, which validates again.
func FuzzDecodeMessages(f *testing.F) {
	for _, s := range []string{
		`{"op":"list","args":{"roots":["tank"],"options":{"Depth":-1,"Types":["snapshot"]}}}`,
		`{"result":[{"Name":"tank/a@b","GUID":1}],"more":true}`,
		`{"error":{"message":"x","kinds":["forbidden"]},"bytes":3}`,
		`{"roots":["tank/data"],"options":{"Depth":1,"UserProps":["zsync:x"]}}`,
		`{"names":["tank/data@s","tank/data#zsync_cursor_T0123456789abcdef_G00000000000000a1"],"props":["guid"]}`,
		`{"snaps":["tank/data@s"]}`,
		`{"tag":"zsync_step_T0123456789abcdef","snaps":["tank/data@s"]}`,
		`{"tag":"zsync_step_T0123456789abcdef_Cdesk","snaps":["tank/data@s"]}`,
		`{"tag":"-r","snaps":["tank/data@s"]}`,
		`{"source":"tank/data@s","bookmark":"tank/data#b"}`,
		`{"dataset":"tank/data","names":["s1","..","a@b","-x"]}`,
		`{"bookmarks":["tank/data#zsync_x","tank/data#a#b"]}`,
		`{"name":"backup/laptop/x","props":{"compression":"lz4","mountpoint":"/etc"},"parents":true}`,
		`{"name":"backup/laptop/x","props":{"zsync:note":"a\nb"}}`,
		`{"name":"backup/laptop/x","props":{"a=b":"c"}}`,
		`{"from":"backup/laptop/a@s","to":"backup/laptop/b@t"}`,
		`{"from":"backup/laptop/a","to":"backup/laptop/b@t"}`,
		`{"options":{"From":"tank/data#b","To":"tank/data@s","Raw":true},"compress":"zstd"}`,
		`{"options":{"ResumeToken":"1-c740b4e79-e0-789c63640000"}}`,
		`{"options":{"Target":"backup/laptop/x","Resumable":true,"Set":{"canmount":"noauto"},"Exclude":["mountpoint"]},"compress":"gzip"}`,
		`{"dataset":"-tank"}`,
		`{"dataset":"tank/a b"}`,
		`{"dataset":"tank/a%b"}`,
		`{"dataset":"tank/../etc"}`,
		`{"dataset":"tank/a\nb"}`,
		`{"dataset":"tank/a\u0000b"}`,
		`{"dataset":"tank/` + strings.Repeat("a", 300) + `"}`,
		`{"token":"1-c740b4e79-e0-789c63640000"}`,
		`{"dataset":"tank"} {}`,
		`{"dataset":"tank","sudo":true}`,
		`{"snaps":"tank/a@b"}`,
		`{"op":"rm -rf","args":null}`,
		`null`,
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, v := range []any{&Request{}, &Response{}, &EndStatus{}} {
			if err := DecodeStrict(data, v); err != nil && !errors.Is(err, ErrProtocol) {
				t.Fatalf("DecodeStrict into %T: %v does not wrap ErrProtocol", v, err)
			}
		}
		var st EndStatus
		if DecodeStrict(data, &st) == nil && st.Error != nil {
			_ = st.Error.Decode().Error()
		}
		for op, v := range newArgs() {
			err := DecodeStrict(data, v)
			if err != nil {
				if !errors.Is(err, ErrProtocol) {
					t.Fatalf("%s: %v does not wrap ErrProtocol", op, err)
				}
				continue
			}
			if v.Validate() != nil {
				continue
			}
			n := namesOf(v)
			for _, s := range n.datasets {
				checkName(t, op+" dataset", s)
				if err := zfs.ValidateDataset(s); err != nil {
					t.Fatalf("%s accepted dataset: %v", op, err)
				}
			}
			for _, s := range n.snapshots {
				checkName(t, op+" snapshot", s)
				if err := zfs.ValidateSnapshot(s); err != nil {
					t.Fatalf("%s accepted snapshot: %v", op, err)
				}
			}
			for _, s := range n.bookmarks {
				checkName(t, op+" bookmark", s)
				if err := zfs.ValidateBookmark(s); err != nil {
					t.Fatalf("%s accepted bookmark: %v", op, err)
				}
			}
			for _, s := range n.versions {
				checkName(t, op+" snapshot or bookmark", s)
				if err := zfs.ValidateVersion(s); err != nil {
					t.Fatalf("%s accepted version: %v", op, err)
				}
			}
			for _, s := range n.components {
				if err := zfs.ValidateComponent(s); err != nil || strings.ContainsAny(s, "/@#%") {
					t.Fatalf("%s accepted short name %q: %v", op, s, err)
				}
			}
			for _, s := range n.tags {
				if err := zfs.ValidateHoldTag(s); err != nil {
					t.Fatalf("%s accepted hold tag: %v", op, err)
				}
			}
			for _, s := range n.props {
				if s == "" || s[0] == '-' || strings.ContainsAny(s, "=, \t\n\x00\x7f") {
					t.Fatalf("%s accepted property name %q", op, s)
				}
				if err := zfs.ValidatePropertyName(s); err != nil {
					t.Fatalf("%s accepted property name %q: %v", op, s, err)
				}
			}
			for _, s := range n.values {
				if strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
					t.Fatalf("%s accepted property value %q", op, s)
				}
			}
			// Round trip: what the client would send of this value
			// decodes to the same value on the server, still valid.
			b1, err := json.Marshal(v)
			if err != nil {
				t.Fatalf("%s: marshal: %v", op, err)
			}
			v2 := newArgs()[op]
			if err := DecodeStrict(b1, v2); err != nil {
				t.Fatalf("%s: %s does not decode: %v", op, b1, err)
			}
			if err := v2.Validate(); err != nil {
				t.Fatalf("%s: %s no longer validates: %v", op, b1, err)
			}
			if b2, _ := json.Marshal(v2); !bytes.Equal(b1, b2) {
				t.Fatalf("%s: round trip %s -> %s", op, b1, b2)
			}
		}
	})
}

// maxDecodedOverhead bounds what decoding adds to the far side's text: the
// fixed prefixes of DecodeFatal and of an empty message.
const maxDecodedOverhead = 256

// FuzzDecodeError decodes an error frame's payload (DecodeFatal) and an
// error object (Error.Decode, as a response or an end status carries it).
// Properties: no panic; DecodeFatal's error always wraps ErrProtocol; a
// decoded error's Error() is never empty and never longer than the payload
// it came from plus a fixed overhead (decoding amplifies nothing); every
// kind the payload names that is known is wrapped (errors.Is), and a
// batch failure is rebuilt as the zfs type (errors.As); the per-name errors
// of a batch have bounded text too.
func FuzzDecodeError(f *testing.F) {
	for _, s := range []string{
		`{"kinds":["protocol"],"message":"bad"}`,
		`{"kinds":["forbidden","dataset_not_found","nonsense"],"message":"client laptop may not list tank"}`,
		`{"message":"cannot receive","zfs":{"args":["recv","-s","backup/x"],"stderr":"cannot receive\n","exit_code":1},"resumable":{"dataset":"backup/x","token":"1-abc"}}`,
		`{"message":"destroy","destroy":{"dataset":"tank/a","failed":{"s":{"kinds":["snapshot_held"],"message":"held"}},"omitted":3}}`,
		`{"message":"hold","hold":{"op":"hold","tag":"zsync_step_T0123456789abcdef_Cdesk","failed":{"tank/a@s":{"kinds":["hold_exists"]}},"incomplete":true}}`,
		`{"name":{"name":"-tank\u0000","reason":"bad"}}`,
		`{"message":"` + strings.Repeat(`\u0000`, 100) + `"}`,
		`{}`,
		`null`,
		`[]`,
		`{"message":`,
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		limit := len(data) + maxDecodedOverhead
		err := DecodeFatal(data)
		if err == nil || !errors.Is(err, ErrProtocol) {
			t.Fatalf("DecodeFatal = %v, want an error wrapping ErrProtocol", err)
		}
		if msg := err.Error(); msg == "" || len(msg) > limit {
			t.Fatalf("DecodeFatal's message is %d bytes for %d bytes of payload", len(msg), len(data))
		}
		var w *Error
		if DecodeLenient(data, &w) != nil || w == nil {
			return
		}
		e := w.Decode()
		if msg := e.Error(); msg == "" || len(msg) > limit {
			t.Fatalf("Decode's message is %d bytes for %d bytes of payload", len(msg), len(data))
		}
		for _, name := range w.Kinds {
			for _, k := range Kinds() {
				if k.Name == name && !errors.Is(e, k.Err) {
					t.Fatalf("kind %s is not wrapped by %v", name, e)
				}
			}
		}
		if w.Destroy != nil {
			var de *zfs.DestroyError
			if !errors.As(e, &de) {
				t.Fatalf("a destroy failure does not rebuild *zfs.DestroyError")
			}
			for _, fe := range de.Failed {
				if msg := fe.Error(); len(msg) > limit {
					t.Fatalf("a per-name message is %d bytes for %d bytes of payload", len(msg), len(data))
				}
			}
		}
		if w.Hold != nil {
			var he *zfs.HoldError
			if !errors.As(e, &he) {
				t.Fatalf("a hold failure does not rebuild *zfs.HoldError")
			}
			_ = he.Error()
		}
		if w.Resumable != nil {
			var re *zfs.ResumableRecvError
			if !errors.As(e, &re) || re.Token != w.Resumable.Token {
				t.Fatalf("a resumable failure does not rebuild *zfs.ResumableRecvError")
			}
		}
		// A batch completed with the names of a request stays printable.
		CompleteBatch(e, []string{"s", "tank/a@s"})
		_ = e.Error()
	})
}
