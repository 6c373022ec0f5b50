package zfs

import (
	"context"
	"errors"
	"reflect"
	"testing"
)

func TestGetParses(t *testing.T) {
	c, f := newFake(t)
	f.Expect([]string{"zfs", "get", "-H", "-p", "-o", "name,property,value,source", "guid,zsync:target-id,receive_resume_token,zsync:note", "tank/a", "tank/my fs@s 1"},
		FakeResponse{Stdout: "tank/a\tguid\t123\t-\n" +
			"tank/a\tzsync:target-id\tt-1\tlocal\n" +
			"tank/a\treceive_resume_token\t-\t-\n" +
			"tank/a\tzsync:note\twith\ttab\tlocal\n" +
			"tank/my fs@s 1\tguid\t456\t-\n" +
			"tank/my fs@s 1\tzsync:target-id\tt-1\tinherited from tank/a\n" +
			"tank/my fs@s 1\treceive_resume_token\t-\t-\n" +
			"tank/my fs@s 1\tzsync:note\t-\t-\n"})
	got, err := c.Get(context.Background(), []string{"tank/a", "tank/my fs@s 1"},
		[]string{"guid", "zsync:target-id", "receive_resume_token", "zsync:note"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]string{
		"tank/a":         {"guid": "123", "zsync:target-id": "t-1", "zsync:note": "with\ttab"},
		"tank/my fs@s 1": {"guid": "456", "zsync:target-id": "t-1"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Get = %q, want %q", got, want)
	}
}

func TestGetBadLine(t *testing.T) {
	c, f := newFake(t)
	f.Expect([]string{"zfs", "get", "-H", "-p", "-o", "name,property,value,source", "guid", "tank/a"},
		FakeResponse{Stdout: "tank/a\tguid\t123\n"})
	if _, err := c.Get(context.Background(), []string{"tank/a"}, []string{"guid"}); err == nil {
		t.Error("accepted a 3-field line")
	}
}

func TestCreateExistsWithParents(t *testing.T) {
	c, f := newFake(t)
	f.Expect([]string{"zfs", "create", "-p", "tank/a"}, fail(t, "create_exists.txt"))
	if err := c.Create(context.Background(), "tank/a", nil, true); !errors.Is(err, ErrExists) {
		t.Errorf("err = %v, want ErrExists", err)
	}
}

// Get returns only the names asked about, with valid property names (found
// by FuzzParseList).
func TestGetRejectsForeignName(t *testing.T) {
	for _, out := range []string{
		"tank/a\tguid\t1\t-\ntank/b\tguid\t2\t-\n",
		"-o\tguid\t-\t-\n",
		"tank/a\t\t\t\n", // empty property name (FuzzParseList crasher)
		"tank/a\tg,uid\t1\t-\n",
	} {
		c, f := newFake(t)
		f.Expect([]string{"zfs", "get", "-H", "-p", "-o", "name,property,value,source", "guid", "tank/a"},
			FakeResponse{Stdout: out})
		if got, err := c.Get(context.Background(), []string{"tank/a"}, []string{"guid"}); err == nil {
			t.Errorf("output %q accepted: %q", out, got)
		}
	}
}
