package zfs

import (
	"context"
	"errors"
	"testing"
)

func TestDecodeResumeToken(t *testing.T) {
	const tokFull = "1-bf31b879a-b8-789c636064000310a500c4ec50360710e72765a5269740f80cd8e4d3d28a534b18e00024cf86249f5459925acc802a8facbf243fbd3433858161f5ddb9ab1ae7c7466a20c97382e5f312735319180af2f3730cf58166953824c2cc0200cde81651"
	const tokInc = "1-c49b979a2-e0-789c636064000310a501c49c50360710a715e5e7a69766a63040c1eabb735735ce8f8d5400b2d991d4e52765a5269740f82080219f96569c5ac2000720793624f9a4ca92d46206547964fd25f91057f09e37babb88c9bf5503499e132c9f97989bcac050909f9f63a80f34abc421096616007c881d4c"
	tests := []struct {
		script, token string
		want          ResumeToken
	}{
		{"resume_full_sender.script", tokFull, ResumeToken{ToGUID: 0x854f02a2dd32cf0d, ToName: "tank/a@s2",
			Raw: true, Compressed: true, Embedded: true, Object: 0x80, Offset: 0x60000, Bytes: 0x11d6f8}},
		{"resume_inc_receiver.script", tokInc, ResumeToken{FromGUID: 0x595d9f81aa9dddab, ToGUID: 0x854f02a2dd32cf0d,
			ToName: "pool1/test@b", LargeBlocks: true, Object: 1}},
	}
	for _, tt := range tests {
		c, _ := newFake(t, tt.script)
		got, err := c.DecodeResumeToken(context.Background(), tt.token)
		if err != nil {
			t.Errorf("%s: %v", tt.script, err)
			continue
		}
		if got != tt.want {
			t.Errorf("%s:\n got  %+v\n want %+v", tt.script, got, tt.want)
		}
	}
}

func TestDecodeResumeTokenCorrupt(t *testing.T) {
	c, _ := newFake(t, "resume_corrupt.script")
	_, err := c.DecodeResumeToken(context.Background(), "1-deadbeef-10-789c0000")
	if !errors.Is(err, ErrResumeTokenCorrupt) {
		t.Errorf("err = %v, want ErrResumeTokenCorrupt", err)
	}
}

func TestParseResumeTokenForms(t *testing.T) {
	tests := []struct {
		out  string
		ok   bool
		want ResumeToken
	}{
		// Booleans printed bare; a blank line after the version line.
		{"resume token contents:\nnvlist version: 0\n\n\ttoguid = 0x10\n\ttoname = p/a@b\n\tcompressok\n\trawok\n", true,
			ResumeToken{ToGUID: 16, ToName: "p/a@b", Compressed: true, Raw: true}},
		{"resume token contents:\nnvlist version: 0\n\ttoname = p/a@b\n", false, ResumeToken{}},
		{"resume token contents:\nnvlist version: 0\n\ttoguid = zz\n\ttoname = p/a@b\n", false, ResumeToken{}},
		{"resume token contents:\nnvlist version: 0\n\ttoguid = 0x1\n\ttoname = not a snapshot\n", false, ResumeToken{}},
		{"something else\n", false, ResumeToken{}},
		// The arrays and flags of newer tokens are known; the nvlist ends
		// at the first line that is not indented.
		{"resume token contents:\nnvlist version: 0\n\tfromguid = 0x2\n\ttoguid = 0x10\n\ttoname = p/a@b\n\tredact_snaps = 0x5 0x6\n\tbook_redact_snaps = \n\tsavedok = 1\nsend from @a to p/a@b estimated size is 1M\n\ttoguid = 0x11\n", true,
			ResumeToken{FromGUID: 2, ToGUID: 16, ToName: "p/a@b"}},
		// A key printed twice: the later line must not override the first
		// (a toname carrying "\n\ttoguid = ..." prints such a line).
		{"resume token contents:\nnvlist version: 0\n\ttoguid = 0x10\n\ttoname = p/a@b\n\ttoguid = 0x11\n", false, ResumeToken{}},
		{"resume token contents:\nnvlist version: 0\n\ttoname = p/a@b\n\ttoguid = 0x10\n\ttoname = p/other@b\n", false, ResumeToken{}},
		{"resume token contents:\nnvlist version: 0\n\tfromguid = 0x1\n\tfromguid = 0x2\n\ttoguid = 0x10\n\ttoname = p/a@b\n", false, ResumeToken{}},
		// Boolean flags count as keys too.
		{"resume token contents:\nnvlist version: 0\n\ttoguid = 0x10\n\ttoname = p/a@b\n\trawok = 1\n\trawok = 0\n", false, ResumeToken{}},
		// A line the decoder does not know.
		{"resume token contents:\nnvlist version: 0\n\ttoguid = 0x10\n\ttoname = p/a@b\n\tfromname = p/x@y\n", false, ResumeToken{}},
		{"resume token contents:\nnvlist version: 0\n\ttoguid = 0x10\n\ttoname = p/a@b\n\tTONAME = p/x@y\n", false, ResumeToken{}},
		{"resume token contents:\nnvlist version: 0\n\ttoguid = 0x10\n\ttoname = p/a@b\n\t nvlist version: 0\n", false, ResumeToken{}},
		// A second version line inside the nvlist ends it, as any line
		// that is not indented: what follows is not parsed.
		{"resume token contents:\nnvlist version: 0\n\ttoguid = 0x10\n\ttoname = p/a@b\nnvlist version: 0\n\ttoguid = 0x11\n", true,
			ResumeToken{ToGUID: 16, ToName: "p/a@b"}},
	}
	for _, tt := range tests {
		got, err := parseResumeToken(tt.out)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseResumeToken(%q) = %+v, %v", tt.out, got, err)
		}
	}
}
