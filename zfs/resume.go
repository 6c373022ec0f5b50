package zfs

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

func regexpMust(p string) *regexp.Regexp { return regexp.MustCompile(p) }

// ResumeToken is the decoded content of a receive_resume_token.
type ResumeToken struct {
	// FromGUID is the guid of the incremental source (0 for a full send).
	FromGUID uint64
	// ToGUID is the guid of the snapshot being sent.
	ToGUID uint64
	// ToName is the snapshot's name on the sending side when the partial
	// send started.
	ToName string
	// Raw, Compressed, LargeBlocks and Embedded are the stream flags the
	// receive was started with (rawok, compressok, largeblockok, embedok).
	Raw, Compressed, LargeBlocks, Embedded bool
	// Object and Offset locate where the send resumes; Bytes is how much
	// was received.
	Object, Offset, Bytes uint64
}

// DecodeResumeToken decodes a receive_resume_token with `zfs send -nvt
// TOKEN`, which prints the token's nvlist. zfs exits non-zero when the
// token's snapshot does not exist on this machine (a token decoded on the
// receiving side); the contents are still printed and used. A token zfs
// cannot decode -> ErrResumeTokenCorrupt.
func (c *CLI) DecodeResumeToken(ctx context.Context, token string) (ResumeToken, error) {
	if err := ValidateResumeToken(token); err != nil {
		return ResumeToken{}, err
	}
	res, err := c.exec(ctx, c.argv("send", "-nvt", token), nil)
	out := string(res.Stdout) + "\n" + string(res.Stderr)
	rt, perr := parseResumeToken(out)
	if perr == nil {
		return rt, nil
	}
	if err != nil {
		if cerr := classify(err, nil, sendRules...); !errors.Is(cerr, ErrResumeTokenStale) {
			return ResumeToken{}, fmt.Errorf("zfs send -nvt: %w", cerr)
		}
	}
	return ResumeToken{}, fmt.Errorf("zfs send -nvt: %w", perr)
}

var reTokenLine = regexp.MustCompile(`^\s+([a-z_]+)(?: = (.*))?$`)

// tokenKeys are the keys of a receive_resume_token's nvlist as OpenZFS 2.1
// to 2.3 write them (dsl_dataset.c, get_receive_resume_token) and libzfs
// reads them (zfs_send_resume_impl): the decoder knows each one, and a
// printed nvlist with any other key is refused. redact_snaps and
// book_redact_snaps are uint64 arrays ("= 0x1 0x2", an empty one prints a
// blank line); they are accepted and not used.
var tokenKeys = map[string]bool{
	"fromguid": true, "object": true, "offset": true, "bytes": true,
	"toguid": true, "toname": true,
	"largeblockok": true, "embedok": true, "compressok": true, "rawok": true, "savedok": true,
	"redact_snaps": true, "book_redact_snaps": true,
}

// parseResumeToken parses the nvlist printed after "resume token
// contents:". The nvlist is the indented lines after the "nvlist version"
// line; the first line that is not indented ends it (the size estimate or
// zfs's error). Every key must be known and appear once: nvlist_print
// prints a string value raw, so a toname carrying a newline and a tab could
// otherwise add a line that overrides a key printed before it, and zfs
// send -t would act on the nvlist, not on what was parsed.
func parseResumeToken(out string) (ResumeToken, error) {
	i := strings.Index(out, "resume token contents:")
	if i < 0 {
		return ResumeToken{}, fmt.Errorf("no resume token contents in output: %w", ErrResumeTokenCorrupt)
	}
	var rt ResumeToken
	seen := map[string]bool{}
	for _, line := range strings.Split(out[i:], "\n")[1:] {
		if strings.TrimSpace(line) == "" || (len(seen) == 0 && strings.HasPrefix(line, "nvlist version")) {
			continue
		}
		if line[0] != ' ' && line[0] != '\t' {
			break // end of the nvlist (e.g. the send summary or an error)
		}
		m := reTokenLine.FindStringSubmatch(line)
		if m == nil || !tokenKeys[m[1]] {
			return ResumeToken{}, fmt.Errorf("resume token line %q is not one of its known fields: %w", shorten(strings.TrimSpace(line), 60), ErrResumeTokenCorrupt)
		}
		key, val := m[1], m[2]
		if seen[key] {
			return ResumeToken{}, fmt.Errorf("resume token field %s appears twice: %w", key, ErrResumeTokenCorrupt)
		}
		seen[key] = true
		var err error
		switch key {
		case "fromguid":
			rt.FromGUID, err = parseTokenUint(val)
		case "toguid":
			rt.ToGUID, err = parseTokenUint(val)
		case "toname":
			rt.ToName = val
		case "object":
			rt.Object, err = parseTokenUint(val)
		case "offset":
			rt.Offset, err = parseTokenUint(val)
		case "bytes":
			rt.Bytes, err = parseTokenUint(val)
		case "rawok":
			rt.Raw, err = parseTokenBool(val)
		case "compressok":
			rt.Compressed, err = parseTokenBool(val)
		case "largeblockok":
			rt.LargeBlocks, err = parseTokenBool(val)
		case "embedok":
			rt.Embedded, err = parseTokenBool(val)
		case "savedok":
			_, err = parseTokenBool(val)
		}
		if err != nil {
			return ResumeToken{}, fmt.Errorf("resume token field %s=%q: %v: %w", key, shorten(val, 60), err, ErrResumeTokenCorrupt)
		}
	}
	if !seen["toguid"] || !seen["toname"] || rt.ToGUID == 0 {
		return ResumeToken{}, fmt.Errorf("resume token without toguid/toname: %w", ErrResumeTokenCorrupt)
	}
	if err := ValidateSnapshot(rt.ToName); err != nil {
		return ResumeToken{}, fmt.Errorf("resume token toname: %v: %w", err, ErrResumeTokenCorrupt)
	}
	return rt, nil
}

// parseTokenUint parses nvlist_print's uint64 rendering (0x... hex).
func parseTokenUint(v string) (uint64, error) {
	return strconv.ParseUint(strings.TrimSpace(v), 0, 64)
}

// parseTokenBool parses a boolean nvpair: printed bare (DATA_TYPE_BOOLEAN)
// or as "= 1" / "= B_TRUE".
func parseTokenBool(v string) (bool, error) {
	switch strings.TrimSpace(v) {
	case "", "1", "B_TRUE", "true":
		return true, nil
	case "0", "B_FALSE", "false":
		return false, nil
	}
	return false, errors.New("not a boolean")
}
