package serve

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/zsync-dev/zsync/zfs"
)

// defaultAllowedProps are the properties every restricted client may set
// on what it receives and creates; zsync's own user properties ("zsync:*")
// are allowed too. A [[serve.client]] entry adds more with
// allow_properties.
var defaultAllowedProps = []string{"atime", "compression", "readonly", "recordsize"}

// The far side decides how received data lands: these properties take
// only the values below from a restricted client (the values zsync's own
// client sends), whatever allow_properties says.
var farSideValues = map[string][]string{
	"canmount":   {"noauto", "off"},
	"volmode":    {"none"},
	"mountpoint": nil,
}

// Properties a received stream may never set (zfs recv -x): a stream sent
// with -p or -R carries its properties, and a compound stream can hide
// such a package after its head. Per type, because zfs warns about every
// -x that does not apply.
var (
	excludeFilesystem = []string{
		"context", "defcontext", "devices", "exec", "fscontext", "mountpoint", "overlay",
		"refreservation", "reservation", "rootcontext", "setuid", "sharenfs", "sharesmb", "zoned",
	}
	excludeVolume = []string{"refreservation", "reservation", "snapdev"}
)

// propRules are a restricted client's property rights.
type propRules struct {
	client string
	allow  []string // from allow_properties
}

// dropOverride is the client side's way out of a refused property: the
// job asked for it in properties_override.
const dropOverride = "drop it from the job's properties_override"

// refusal says why the client may not set prop to value, or "", and what
// would make the request pass.
func (r propRules) refusal(prop, value string) string {
	if values, ok := farSideValues[prop]; ok {
		if slices.Contains(values, value) {
			return ""
		}
		if len(values) == 0 {
			return prop + " is decided by the far side: received and created datasets inherit it from below the receive root (" + dropOverride + ")"
		}
		return fmt.Sprintf("%s is decided by the far side (it may be %s; %s)", prop, strings.Join(values, " or "), dropOverride)
	}
	if strings.HasPrefix(prop, zsyncPropertyPrefix) || slices.Contains(defaultAllowedProps, prop) || slices.Contains(r.allow, prop) {
		return ""
	}
	return fmt.Sprintf("property %s is not allowed (add %q to allow_properties in [[serve.client]] %s on this host, or %s)", prop, prop, r.client, dropOverride)
}

// check returns the first refused property of props (in name order) and
// why, or "", "".
func (r propRules) check(props map[string]string) (string, string) {
	keys := make([]string, 0, len(props))
	for k := range props {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if why := r.refusal(k, props[k]); why != "" {
			return k, why
		}
	}
	return "", ""
}

// landing builds the zfs recv options of a restricted client's receive
// from what the stream's head says and what the client asked for (already
// checked with check): never mounted, filesystems canmount=noauto, every
// dataset volmode=none, the stream's own properties for mounting, devices
// and space excluded. The client's own -o survive only where they passed
// the rules; its -x are kept unless the far side sets that property.
func landing(h zfs.StreamHeader, asked zfs.RecvOptions) zfs.RecvOptions {
	o := zfs.RecvOptions{
		Target:    asked.Target,
		Resumable: asked.Resumable,
		NoMount:   true,
		Force:     asked.Force,
		Set:       map[string]string{},
	}
	for k, v := range asked.Set {
		o.Set[k] = v
	}
	o.Set["volmode"] = "none"
	exclude := excludeVolume
	if h.Type == zfs.Filesystem {
		if v := o.Set["canmount"]; v != "off" {
			o.Set["canmount"] = "noauto"
		}
		exclude = excludeFilesystem
	} else {
		delete(o.Set, "canmount") // zfs refuses it for a volume
	}
	seen := map[string]bool{}
	for _, k := range append(append([]string(nil), exclude...), asked.Exclude...) {
		if _, set := o.Set[k]; set || seen[k] {
			continue
		}
		seen[k] = true
		o.Exclude = append(o.Exclude, k)
	}
	sort.Strings(o.Exclude)
	return o
}

// createProps are the properties of a filesystem a restricted client
// creates (a placeholder): its checked properties, and canmount=noauto
// unless it asked for off.
func createProps(asked map[string]string) map[string]string {
	p := map[string]string{}
	for k, v := range asked {
		p[k] = v
	}
	if p["canmount"] != "off" {
		p["canmount"] = "noauto"
	}
	return p
}
