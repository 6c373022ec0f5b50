package zfs

import (
	"context"
	"reflect"
	"strings"
	"testing"
)

func TestLoadScript(t *testing.T) {
	f := NewFakeRunner()
	err := f.LoadScript(strings.NewReader(`# comment
$ zfs list -H "tank/my fs" "tab\there"
> a	b
>
! warn
? 2

$ zfs version
> zfs-2.1.11-1
$ zfs version
> second
`))
	if err != nil {
		t.Fatal(err)
	}
	res, err := f.Run(context.Background(), Cmd{Argv: []string{"zfs", "list", "-H", "tank/my fs", "tab\there"}})
	if err != nil {
		t.Fatal(err)
	}
	if string(res.Stdout) != "a\tb\n\n" || string(res.Stderr) != "warn\n" || res.ExitCode != 2 {
		t.Errorf("res = %q %q %d", res.Stdout, res.Stderr, res.ExitCode)
	}
	for _, want := range []string{"zfs-2.1.11-1\n", "second\n"} {
		res, err := f.Run(context.Background(), Cmd{Argv: []string{"zfs", "version"}})
		if err != nil || string(res.Stdout) != want {
			t.Errorf("version = %q, %v; want %q", res.Stdout, err, want)
		}
	}
	if _, err := f.Run(context.Background(), Cmd{Argv: []string{"zfs", "version"}}); err == nil {
		t.Error("consumed response answered again")
	}
	if p := f.Pending(); len(p) != 0 {
		t.Errorf("pending = %q", p)
	}
	if got := len(f.Calls()); got != 4 {
		t.Errorf("%d calls recorded", got)
	}
}

func TestLoadScriptErrors(t *testing.T) {
	for _, s := range []string{
		"> before argv\n",
		"$ zfs \"unterminated\n",
		"$ zfs\n? x\n",
		"$ zfs\nbogus\n",
		"$ \n",
	} {
		if err := NewFakeRunner().LoadScript(strings.NewReader(s)); err == nil {
			t.Errorf("LoadScript(%q) accepted", s)
		}
	}
}

func TestFakePending(t *testing.T) {
	f := NewFakeRunner()
	f.Expect([]string{"zfs", "a"}, FakeResponse{})
	f.Expect([]string{"zfs", "b"}, FakeResponse{})
	f.Expect([]string{"zfs", "a"}, FakeResponse{})
	if _, err := f.Run(context.Background(), Cmd{Argv: []string{"zfs", "a"}}); err != nil {
		t.Fatal(err)
	}
	if got, want := f.Pending(), [][]string{{"zfs", "a"}, {"zfs", "b"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("Pending = %q, want %q", got, want)
	}
}
