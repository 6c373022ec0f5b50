package zfs

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// Real tokens from testdata/resume_*.script and list_tree.script.
const (
	fuzzTokFull = "1-bf31b879a-b8-789c636064000310a500c4ec50360710e72765a5269740f80cd8e4d3d28a534b18e00024cf86249f5459925acc802a8facbf243fbd3433858161f5ddb9ab1ae7c7466a20c97382e5f312735319180af2f3730cf58166953824c2cc0200cde81651"
	fuzzTokInc  = "1-c49b979a2-e0-789c636064000310a501c49c50360710a715e5e7a69766a63040c1eabb735735ce8f8d5400b2d991d4e52765a5269740f82080219f96569c5ac2000720793624f9a4ca92d46206547964fd25f91057f09e37babb88c9bf5503499e132c9f97989bcac050909f9f63a80f34abc421096616007c881d4c"
	fuzzTokList = "1-10f4b6d8a2-e8-789c636064000310a501c49c50360710a715e5e7a69766a6304041f8c0a4e8f2e5cd59c9ab0c0204e49b3a6b0b0b4f44b5a0e0da6a5d2d2f05bafc2b9b6f0d2b6c0a0c0c0c0c00d3a80e6f"

	fuzzOutFull = "resume token contents:\nnvlist version: 0\n\tobject = 0x80\n\toffset = 0x60000\n\tbytes = 0x11d6f8\n\ttoguid = 0x854f02a2dd32cf0d\n\ttoname = tank/a@s2\n\tembedok = 1\n\tcompressok = 1\n\trawok = 1\nfull send of tank/a@s2 estimated size is 3.06M\n"
	fuzzOutInc  = "resume token contents:\nnvlist version: 0\n\tfromguid = 0x595d9f81aa9dddab\n\tobject = 0x1\n\toffset = 0x0\n\tbytes = 0x0\n\ttoguid = 0x854f02a2dd32cf0d\n\ttoname = pool1/test@b\n\tlargeblockok = 1\n"
	fuzzErrInc  = "cannot resume send: 'pool1/test@b' used in the initial send no longer exists\n"
	fuzzErrBad  = "cannot resume send: resume token is corrupt (incorrect checksum)\n"
)

type resumeSeed struct {
	token, stdout, stderr string
	exit                  uint8
}

func resumeSeeds() []resumeSeed {
	seeds := []resumeSeed{
		{fuzzTokFull, fuzzOutFull, "", 0},
		{fuzzTokInc, fuzzOutInc, fuzzErrInc, 1},
		{fuzzTokList, fuzzOutInc, "", 0},
		{"1-deadbeef-10-789c0000", "", fuzzErrBad, 1},
		{fuzzTokFull, "resume token contents:\nnvlist version: 0\n\n\ttoguid = 0x10\n\ttoname = p/a@b\n\tcompressok\n\trawok\n", "", 0},
		{fuzzTokFull, "resume token contents:\nnvlist version: 0\n\ttoguid = 0x1\n\ttoname = -o@x\n", "", 0},
		{fuzzTokFull, "resume token contents:\nnvlist version: 0\n\ttoguid = 0x1\n\ttoname = tank/a@b\r\n", "", 0},
		{fuzzTokFull, "resume token contents:\nnvlist version: 0\n\ttoguid = 0x0\n\ttoname = tank/a@b\n", "", 0},
		{fuzzTokFull, "resume token contents:\nnvlist version: 0\n\ttoguid = 0x1\n\ttoname = tank/a@b\n\ttoname = tank/a#b\n", "", 0},
		{fuzzTokFull, "resume token contents:\nnvlist version: 0\n\ttoguid = 18446744073709551616\n\ttoname = tank/a@b\n", "", 0},
		{fuzzTokFull, "resume token contents:\n\ttoguid = 0x1\n\ttoname = tank/a@b\n\trawok = maybe\n", "", 0},
		{fuzzTokFull, fuzzOutFull[:len(fuzzOutFull)/2], "", 0},
		{fuzzTokInc, fuzzOutInc, "cannot resume send: 'pool1/test@b' used in the initial send no longer exists\n", 255},
		{"", "", "", 0},
		{"-o", fuzzOutFull, "", 0},
		{"1-a-b-c\n", fuzzOutFull, "", 0},
		{"1-A-B-C", fuzzOutFull, "", 0},
		{"1-bf31b879a-b8-", fuzzOutFull, "", 0},
	}
	// Truncated and bit-flipped real tokens.
	for _, tok := range []string{fuzzTokFull, fuzzTokInc} {
		seeds = append(seeds,
			resumeSeed{tok[:len(tok)/2], fuzzOutFull, "", 0},
			resumeSeed{tok[:12], "", fuzzErrBad, 1},
			resumeSeed{flipBit(tok, 3, 0x01), fuzzOutFull, "", 0},
			resumeSeed{flipBit(tok, len(tok)-1, 0x40), "", fuzzErrBad, 1},
			resumeSeed{flipBit(tok, 1, 0x80), fuzzOutFull, "", 0},
		)
	}
	return seeds
}

func flipBit(s string, i int, mask byte) string {
	b := []byte(s)
	b[i] ^= mask
	return string(b)
}

// FuzzDecodeResumeToken fuzzes what zsync does with a resume token: the
// shape check (ValidateResumeToken), the parser of `zfs send -nvt TOKEN`
// (parseResumeToken) and the two together in CLI.DecodeResumeToken with a
// fake zfs answering stdout, stderr and exit status. zsync does not decode
// the token's compressed nvlist itself; zfs does. Properties:
//   - nothing panics;
//   - a token ValidateResumeToken accepts is one argv element of the
//     documented shape (digits, then three hex fields; never '-' first, no
//     space or control character); a rejected one wraps
//     ErrResumeTokenCorrupt and never reaches zfs;
//   - a decoded token names a valid snapshot and a non-zero guid;
//   - a failure wraps ErrResumeTokenCorrupt, except when zfs failed with
//     an error of its own, which is then a *zfs.Error (exit status and
//     stderr), never a bare parse error.
func FuzzDecodeResumeToken(f *testing.F) {
	for _, s := range resumeSeeds() {
		f.Add(s.token, s.stdout, s.stderr, s.exit)
	}
	f.Fuzz(func(t *testing.T, token, stdout, stderr string, exit uint8) {
		tokErr := ValidateResumeToken(token)
		if tokErr != nil {
			if !errors.Is(tokErr, ErrResumeTokenCorrupt) {
				t.Errorf("ValidateResumeToken(%q) = %v, not ErrResumeTokenCorrupt", token, tokErr)
			}
		} else {
			checkTokenShape(t, token)
		}

		out := stdout + "\n" + stderr
		rt, err := parseResumeToken(out)
		if err != nil {
			if !errors.Is(err, ErrResumeTokenCorrupt) {
				t.Errorf("parseResumeToken(%q) = %v, not ErrResumeTokenCorrupt", out, err)
			}
			if rt != (ResumeToken{}) {
				t.Errorf("parseResumeToken(%q) failed but returned %+v", out, rt)
			}
		} else {
			checkDecoded(t, rt)
		}

		fr := NewFakeRunner()
		fr.Fallback = func(Cmd) (FakeResponse, bool) {
			return FakeResponse{Stdout: stdout, Stderr: stderr, ExitCode: int(exit)}, true
		}
		c := New(WithRunner(fr))
		drt, derr := c.DecodeResumeToken(context.Background(), token)
		calls := fr.Calls()
		if tokErr != nil {
			if len(calls) != 0 {
				t.Errorf("rejected token %q reached zfs: %q", token, argvOf(calls))
			}
			if !errors.Is(derr, ErrResumeTokenCorrupt) {
				t.Errorf("DecodeResumeToken(%q) = %v, not ErrResumeTokenCorrupt", token, derr)
			}
			return
		}
		if len(calls) != 1 {
			t.Fatalf("DecodeResumeToken(%q): %d zfs calls", token, len(calls))
		}
		argv := calls[0].Argv
		if n := len(argv); n < 2 || argv[n-1] != token || argv[n-2] != "-nvt" {
			t.Errorf("argv %q does not end in -nvt TOKEN", argv)
		}
		if derr == nil {
			checkDecoded(t, drt)
			if err != nil || drt != rt {
				t.Errorf("DecodeResumeToken = %+v, parseResumeToken = %+v, %v", drt, rt, err)
			}
			return
		}
		if drt != (ResumeToken{}) {
			t.Errorf("DecodeResumeToken failed (%v) but returned %+v", derr, drt)
		}
		var ce *Error
		switch {
		case errors.Is(derr, ErrResumeTokenCorrupt):
		case exit != 0 && errors.As(derr, &ce):
			if ce.ExitCode != int(exit) {
				t.Errorf("*Error exit %d, zfs exited %d", ce.ExitCode, exit)
			}
		default:
			t.Errorf("DecodeResumeToken: %v (exit %d): neither ErrResumeTokenCorrupt nor a *zfs.Error", derr, exit)
		}
		if exit == 0 && !errors.Is(derr, ErrResumeTokenCorrupt) {
			t.Errorf("zfs succeeded, the output did not parse, and the error is %v", derr)
		}
	})
}

func checkTokenShape(t *testing.T, tok string) {
	t.Helper()
	f := strings.Split(tok, "-")
	if len(f) != 4 || len(tok) > maxResumeTokenLen {
		t.Fatalf("token %q accepted: %d fields, %d bytes", tok, len(f), len(tok))
	}
	for i, part := range f {
		if part == "" {
			t.Errorf("token %q accepted with empty field %d", tok, i)
		}
		for j := 0; j < len(part); j++ {
			c := part[j]
			digit := c >= '0' && c <= '9'
			hex := digit || (c >= 'a' && c <= 'f')
			if (i == 0 && !digit) || !hex {
				t.Errorf("token %q accepted with %q in field %d", tok, c, i)
			}
		}
	}
}

func checkDecoded(t *testing.T, rt ResumeToken) {
	t.Helper()
	if err := ValidateSnapshot(rt.ToName); err != nil {
		t.Errorf("decoded token names an invalid snapshot: %v", err)
	}
	if rt.ToGUID == 0 {
		t.Errorf("decoded token without toguid: %+v", rt)
	}
}
