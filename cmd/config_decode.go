package cmd

import (
	"encoding"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
)

// removedKeys are keys zsync once accepted. They are unknown keys now, with
// a message that says what to do instead. Paths are without array indexes.
var removedKeys = map[string]string{
	"global.report_file": "report_file was removed: it never wrote anything. Each run stores its report in <state_dir>/reports/<job>.json " +
		"(`zsync status` shows it) and --json prints it on stdout; delete this line",
}

// problem is one thing wrong with a key, before it is given a file and line.
type problem struct {
	key     string
	msg     string
	warning bool
	// jobs marks an error about jobs that `serve --client`, which runs
	// none, does not stop for (how jobs combine, see lint; an empty hook
	// program); it stops every command that runs jobs.
	jobs bool
}

// schemaDecoder fills the config structs from the generic TOML document
// (what toml.Decode gives for a map[string]any) and, unlike the library's
// own decoding, goes on after a problem: every unknown key and every value
// of the wrong type is reported, each with its indexed key path.
type schemaDecoder struct {
	problems []problem
}

func (d *schemaDecoder) fail(key, format string, a ...any) {
	d.problems = append(d.problems, problem{key: key, msg: fmt.Sprintf(format, a...)})
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

// tomlName is the key name of a struct field ("" when it has none).
func tomlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
	if name == "-" || !f.IsExported() {
		return ""
	}
	return name
}

// decode stores data, found at path, into rv.
func (d *schemaDecoder) decode(path string, data any, rv reflect.Value) {
	if reflect.PointerTo(rv.Type()).Implements(textUnmarshaler) {
		var text string
		switch v := data.(type) {
		case string:
			text = v
		case int64:
			text = strconv.FormatInt(v, 10)
		default:
			d.fail(path, "want %s, got %s%s", wantType(rv.Type()), gotValue(data), floatHint(rv.Type(), data))
			return
		}
		if err := rv.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(text)); err != nil {
			d.fail(path, "%v", err)
		}
		return
	}
	switch rv.Kind() {
	case reflect.Pointer:
		v := reflect.New(rv.Type().Elem())
		d.decode(path, data, v.Elem())
		rv.Set(v)
	case reflect.Struct:
		m, ok := data.(map[string]any)
		if !ok {
			d.fail(path, "want %s, got %s", wantType(rv.Type()), gotValue(data))
			return
		}
		d.table(path, m, rv)
	case reflect.Slice:
		var elems []any
		switch v := data.(type) {
		case []any:
			elems = v
		case []map[string]any:
			for _, e := range v {
				elems = append(elems, e)
			}
		default:
			hint := ""
			if _, isTable := data.(map[string]any); isTable && rv.Type().Elem().Kind() == reflect.Struct {
				hint = fmt.Sprintf(" (an array: %s = [{ ... }, { ... }], or one [[%s]] table per entry)", path[strings.LastIndex(path, ".")+1:], plainKey(path))
			}
			d.fail(path, "want %s, got %s%s", wantType(rv.Type()), gotValue(data), hint)
			return
		}
		s := reflect.MakeSlice(rv.Type(), len(elems), len(elems))
		for i, e := range elems {
			d.decode(indexKey(path, i), e, s.Index(i))
		}
		rv.Set(s)
	case reflect.Map:
		m, ok := data.(map[string]any)
		if !ok {
			d.fail(path, "want %s, got %s", wantType(rv.Type()), gotValue(data))
			return
		}
		out := reflect.MakeMapWithSize(rv.Type(), len(m))
		for _, k := range sortedKeys(m) {
			v := reflect.New(rv.Type().Elem()).Elem()
			d.decode(joinKey(path, k), m[k], v)
			out.SetMapIndex(reflect.ValueOf(k), v)
		}
		rv.Set(out)
	case reflect.String:
		if v, ok := data.(string); ok {
			rv.SetString(v)
			return
		}
		d.fail(path, "want %s, got %s", wantType(rv.Type()), gotValue(data))
	case reflect.Int:
		v, ok := data.(int64)
		switch {
		case !ok:
			d.fail(path, "want %s, got %s", wantType(rv.Type()), gotValue(data))
		case rv.OverflowInt(v):
			d.fail(path, "%d is out of range", v)
		default:
			rv.SetInt(v)
		}
	case reflect.Bool:
		if v, ok := data.(bool); ok {
			rv.SetBool(v)
			return
		}
		d.fail(path, "want %s, got %s", wantType(rv.Type()), gotValue(data))
	default:
		panic(fmt.Sprintf("config schema: unsupported type %s at %s", rv.Type(), path))
	}
}

// table fills the struct rv from the TOML table m.
func (d *schemaDecoder) table(path string, m map[string]any, rv reflect.Value) {
	fields := map[string]int{}
	var names []string
	for i := range rv.NumField() {
		if n := tomlName(rv.Type().Field(i)); n != "" {
			fields[n] = i
			names = append(names, n)
		}
	}
	for _, k := range sortedKeys(m) {
		key := joinKey(path, k)
		i, ok := fields[k]
		if !ok {
			d.fail(key, "%s", unknownKeyMsg(key, k, names))
			continue
		}
		d.decode(key, m[k], rv.Field(i))
	}
}

func unknownKeyMsg(key, k string, names []string) string {
	if msg, ok := removedKeys[plainKey(key)]; ok {
		return msg
	}
	// BurntSushi/toml's own decoding, which zsync used before, matched keys
	// in any case; a key is one name, written in lower case
	for _, n := range names {
		if strings.EqualFold(k, n) {
			return fmt.Sprintf("unknown key: keys are lower case: did you mean %s?", n)
		}
	}
	msg := "unknown key"
	best, bestDist := "", 3
	for _, n := range names {
		if dist := editDistance(k, n); dist < bestDist {
			best, bestDist = n, dist
		}
	}
	if best != "" {
		msg += fmt.Sprintf(" (did you mean %s?)", best)
	}
	where := "at the top level"
	if p := plainKey(key); strings.Contains(p, ".") {
		switch parent := p[:strings.LastIndex(p, ".")]; parent {
		case "job", "serve.client":
			where = "in [[" + parent + "]]"
		case "job.prune.source", "job.prune.target":
			where = "in a prune rule"
		default:
			where = "in [" + parent + "]"
		}
	}
	return fmt.Sprintf("%s; the keys %s are %s (see docs/configuration.md)", msg, where, strings.Join(names, ", "))
}

// plainKey drops the array indexes of a key path: job[1].remote -> job.remote.
func plainKey(path string) string {
	var b strings.Builder
	depth := 0
	for _, c := range path {
		switch {
		case c == '[':
			depth++
		case c == ']':
			depth--
		case depth == 0:
			b.WriteRune(c)
		}
	}
	return b.String()
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

var (
	durationType = reflect.TypeFor[Duration]()
	sizeType     = reflect.TypeFor[Size]()
)

// wantType says in the config's words what a key of type t takes.
func wantType(t reflect.Type) string {
	switch t {
	case durationType:
		return `a duration such as "15m", "36h", "14d" or "0"`
	case sizeType:
		return `a size such as "50MiB", "1GB" or "0"`
	}
	switch t.Kind() {
	case reflect.Pointer:
		return wantType(t.Elem())
	case reflect.String:
		return "a string"
	case reflect.Int:
		return "an integer"
	case reflect.Bool:
		return "true or false"
	case reflect.Struct:
		return "a table"
	case reflect.Map:
		return "a table of strings, e.g. { compression = \"lz4\" }"
	case reflect.Slice:
		switch t.Elem().Kind() {
		case reflect.String:
			return "an array of strings"
		case reflect.Struct:
			return "an array of tables"
		}
	}
	return t.String()
}

// floatHint says how to write a size or duration given as a TOML float
// (5e6, 1.5): a size is a whole number of bytes or a string with a unit, a
// duration always a string. Neither is ever a float, so that no size or
// duration is rounded.
func floatHint(t reflect.Type, data any) string {
	f, ok := data.(float64)
	if !ok {
		return ""
	}
	switch t {
	case sizeType:
		if f >= 0 && f <= 1<<53 && f == math.Trunc(f) {
			return fmt.Sprintf(": write the size as a whole number of bytes (%d) or as a string with a unit (\"5MB\", \"1.5GiB\")", int64(f))
		}
		return ": write the size as a whole number of bytes or as a string with a unit (\"5MB\", \"1.5GiB\")"
	case durationType:
		return ": write the duration as a string with a unit (\"90s\", \"15m\")"
	}
	return ""
}

// gotValue says what a TOML value is, quoting short scalars.
func gotValue(v any) string {
	switch x := v.(type) {
	case string:
		if len(x) > 40 {
			x = x[:40] + "..."
		}
		return "the string " + strconv.Quote(x)
	case int64:
		return fmt.Sprintf("the integer %d", x)
	case float64:
		return fmt.Sprintf("the float %v", x)
	case bool:
		return fmt.Sprintf("the boolean %v", x)
	case []any, []map[string]any:
		return "an array"
	case map[string]any:
		return "a table"
	case time.Time:
		return "a date-time"
	}
	return "a date or time"
}

// editDistance is the Levenshtein distance of a and b (short key names).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
