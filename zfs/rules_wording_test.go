package zfs

import (
	"errors"
	"testing"
)

// Wordings libzfs prints that no recorded case provokes: a corrupt token
// names its reason with digits or underscores, a snapshot batch can fail
// for space without a name. Each must get its sentinel; a near miss must
// stay untyped.
func TestUnrecordedWordings(t *testing.T) {
	fail := func(stderr string) error {
		return &Error{Args: []string{"zfs"}, Stderr: stderr, ExitCode: 1}
	}
	for _, tt := range []struct {
		stderr string
		rules  []rule
		want   error
	}{
		{"cannot resume send: resume token is corrupt (invalid version 3)\n", sendRules, ErrResumeTokenCorrupt},
		{"cannot resume send: resume token is corrupt (nvlist_unpack failed)\n", sendRules, ErrResumeTokenCorrupt},
		{"cannot resume send: resume token is corrupt\n", sendRules, ErrResumeTokenCorrupt},
		{"cannot resume send: resume token is corrupt (unterminated\n", sendRules, nil},
		{"cannot resume send: resume token is corrupt (x) and more\n", sendRules, nil},
		{"cannot create snapshots : out of space\n", []rule{ruleSnapExists, ruleSnapPermission, ruleSnapNoSpace}, ErrNoSpace},
		{"cannot create snapshots : out of spaces\n", []rule{ruleSnapExists, ruleSnapPermission, ruleSnapNoSpace}, nil},
	} {
		err := classify(fail(tt.stderr), []string{"tank/a@s"}, tt.rules...)
		if tt.want != nil && !errors.Is(err, tt.want) {
			t.Errorf("%q: %v, want %v", tt.stderr, err, tt.want)
		}
		if tt.want == nil {
			var te *typedError
			if errors.As(err, &te) {
				t.Errorf("%q: typed %v, want the generic error", tt.stderr, te.kind)
			}
		}
	}
}
