package sshtransport

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/kevinburke/ssh_config"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// defaultSSHPort is the port used when neither DialOptions nor ssh_config
// names one.
const defaultSSHPort = 22

// defaultIdentityNames are the keys tried, when they exist, if neither
// DialOptions nor ssh_config names an identity file (OpenSSH's defaults
// without the deprecated DSA key).
var defaultIdentityNames = []string{"id_ed25519", "id_ecdsa", "id_rsa"}

// sshTarget is where and as whom Dial connects once DialOptions and the
// ssh_config file have been combined.
type sshTarget struct {
	alias    string // the host as given in DialOptions
	hostName string // the host to connect to (ssh_config HostName or alias)
	port     int
	user     string
	// identityFiles are the private keys to try, in order.
	identityFiles []string
	// identitiesDefault is true when identityFiles are the built-in defaults
	// (only existing ones are listed, so none is reported as missing).
	identitiesDefault bool
	// proxyJump is DialOptions.ProxyJump or ssh_config's ProxyJump ("" when
	// none); proxyCommand is ssh_config's ProxyCommand, which is refused.
	proxyJump, proxyCommand string
}

// addr is the host:port to dial, also the name checked in known_hosts.
func (t sshTarget) addr() string {
	return net.JoinHostPort(t.hostName, strconv.Itoa(t.port))
}

// resolveTarget combines o with the ssh_config file (o.SSHConfigFile, or
// ~/.ssh/config; a missing file is fine). Explicit fields of o win; the
// keys honoured are HostName, User, Port, IdentityFile and ProxyJump, as
// the first matching Host block gives them (ProxyCommand is noted, to be
// refused). Paths in IdentityFile expand "~" and the
// tokens %d (local home), %u (local user), %h (host name), %r (remote user)
// and %%.
func resolveTarget(o DialOptions) (sshTarget, error) {
	if o.Host == "" {
		return sshTarget{}, errors.New("ssh: no host given")
	}
	if strings.ContainsAny(o.Host, " \t\r\n") || strings.HasPrefix(o.Host, "-") {
		return sshTarget{}, fmt.Errorf("ssh: invalid host name %q", o.Host)
	}
	if strings.Contains(o.Host, "@") {
		return sshTarget{}, fmt.Errorf("ssh: host %q contains '@': give the user separately", o.Host)
	}
	home, _ := os.UserHomeDir() // "" when unknown: no ~ expansion, no defaults
	cfg, err := loadSSHConfig(o.SSHConfigFile, home)
	if err != nil {
		return sshTarget{}, err
	}
	get := func(key string) string {
		if cfg == nil {
			return ""
		}
		v, _ := cfg.Get(o.Host, key) // errors only come from conditional Includes
		return strings.TrimSpace(v)
	}

	t := sshTarget{alias: o.Host, hostName: o.Host}
	if hn := get("HostName"); hn != "" {
		t.hostName = strings.NewReplacer("%h", o.Host, "%%", "%").Replace(hn)
	}
	local := ""
	if u, err := user.Current(); err == nil {
		local = u.Username
	}
	switch {
	case o.User != "":
		t.user = o.User
	case get("User") != "":
		t.user = get("User")
	case local != "":
		t.user = local
	default:
		return sshTarget{}, fmt.Errorf("ssh: no user given for %s and the current user is unknown", o.Host)
	}

	switch {
	case o.Port != 0:
		t.port = o.Port
	case get("Port") != "":
		p, err := strconv.Atoi(get("Port"))
		if err != nil {
			return sshTarget{}, fmt.Errorf("ssh config: Port %q for host %s is not a number", get("Port"), o.Host)
		}
		t.port = p
	default:
		t.port = defaultSSHPort
	}
	if t.port < 1 || t.port > 65535 {
		return sshTarget{}, fmt.Errorf("ssh: port %d for host %s is out of range", t.port, o.Host)
	}

	switch {
	case strings.EqualFold(o.ProxyJump, "none"):
	case o.ProxyJump != "":
		t.proxyJump = o.ProxyJump
	case get("ProxyJump") != "" && !strings.EqualFold(get("ProxyJump"), "none"):
		t.proxyJump = get("ProxyJump")
	case get("ProxyCommand") != "" && !strings.EqualFold(get("ProxyCommand"), "none"):
		t.proxyCommand = get("ProxyCommand")
	}

	expand := func(p string) string {
		return expandSSHPath(p, home, local, t.hostName, t.user)
	}
	switch {
	case len(o.IdentityFiles) > 0:
		for _, f := range o.IdentityFiles {
			t.identityFiles = append(t.identityFiles, expand(f))
		}
	default:
		var fromCfg []string
		if cfg != nil {
			fromCfg, _ = cfg.GetAll(o.Host, "IdentityFile")
		}
		for _, f := range fromCfg {
			f = strings.TrimSpace(f)
			if f == "" || strings.EqualFold(f, "none") {
				continue
			}
			t.identityFiles = append(t.identityFiles, expand(f))
		}
		if len(t.identityFiles) == 0 && home != "" {
			t.identitiesDefault = true
			for _, name := range defaultIdentityNames {
				p := filepath.Join(home, ".ssh", name)
				if _, err := os.Stat(p); err == nil {
					t.identityFiles = append(t.identityFiles, p)
				}
			}
		}
	}
	return t, nil
}

// loadSSHConfig parses path (or ~/.ssh/config when path is ""). A missing
// file yields a nil config and no error.
func loadSSHConfig(path, home string) (*ssh_config.Config, error) {
	if path == "" {
		if home == "" {
			return nil, nil
		}
		path = filepath.Join(home, ".ssh", "config")
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ssh config: %w", err)
	}
	cfg, err := ssh_config.DecodeBytes(data)
	if err != nil {
		return nil, fmt.Errorf("ssh config %s: %w", path, err)
	}
	return cfg, nil
}

// expandSSHPath expands a leading "~" (alone or before "/") to home and the
// ssh_config tokens %d, %u, %h, %r and %% in p. Unknown tokens are kept.
func expandSSHPath(p, home, localUser, host, remoteUser string) string {
	if home != "" && (p == "~" || strings.HasPrefix(p, "~/")) {
		p = home + p[1:]
	}
	if !strings.Contains(p, "%") {
		return p
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] != '%' || i+1 == len(p) {
			b.WriteByte(p[i])
			continue
		}
		i++
		switch p[i] {
		case 'd':
			b.WriteString(home)
		case 'u':
			b.WriteString(localUser)
		case 'h':
			b.WriteString(host)
		case 'r':
			b.WriteString(remoteUser)
		case '%':
			b.WriteByte('%')
		default:
			b.WriteByte('%')
			b.WriteByte(p[i])
		}
	}
	return b.String()
}

// sshAuth holds the keys Dial offers.
type sshAuth struct {
	signers  []ssh.Signer
	tried    []string
	problems []string
	agent    net.Conn // open while the handshake may use agent keys
}

// loadAuth loads t's identity files, then the keys of the ssh-agent at
// $SSH_AUTH_SOCK (if set), skipping duplicates. Unusable files are noted
// in problems; they never stop the others from being tried.
func loadAuth(ctx context.Context, t sshTarget) *sshAuth {
	a := &sshAuth{}
	for _, f := range t.identityFiles {
		data, err := os.ReadFile(f)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) || !t.identitiesDefault {
				a.problems = append(a.problems, fmt.Sprintf("identity file %s: %v", f, unwrapPathError(err)))
			}
			continue
		}
		signer, err := ssh.ParsePrivateKey(data)
		var pm *ssh.PassphraseMissingError
		switch {
		case errors.As(err, &pm):
			a.problems = append(a.problems, fmt.Sprintf("identity file %s is encrypted and no passphrase source is available (load it into ssh-agent or use an unencrypted key)", f))
			continue
		case err != nil:
			a.problems = append(a.problems, fmt.Sprintf("identity file %s: %v", f, err))
			continue
		}
		a.add(signer, f)
	}
	sock := os.Getenv("SSH_AUTH_SOCK")
	if sock == "" {
		return a
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		a.problems = append(a.problems, fmt.Sprintf("ssh-agent at %s: %v", sock, err))
		return a
	}
	a.agent = conn
	ag := agent.NewClient(conn)
	keys, err := ag.List()
	if err == nil {
		var signers []ssh.Signer
		if signers, err = ag.Signers(); err == nil {
			for _, s := range signers {
				name := "agent key"
				for _, k := range keys {
					if k.Comment != "" && string(k.Blob) == string(s.PublicKey().Marshal()) {
						name = "agent key " + k.Comment
					}
				}
				a.add(s, name)
			}
		}
	}
	if err != nil {
		a.problems = append(a.problems, fmt.Sprintf("ssh-agent at %s: %v", sock, err))
	}
	return a
}

// unwrapPathError drops the op and path of a *fs.PathError (the message
// names the file already).
func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// add appends signer (named name in messages) unless its key is already
// there.
func (a *sshAuth) add(signer ssh.Signer, name string) {
	blob := signer.PublicKey().Marshal()
	for _, s := range a.signers {
		if string(s.PublicKey().Marshal()) == string(blob) {
			return
		}
	}
	a.signers = append(a.signers, signer)
	a.tried = append(a.tried, fmt.Sprintf("%s (%s)", name, ssh.FingerprintSHA256(signer.PublicKey())))
}

// signersFunc is the ssh.PublicKeysCallback source.
func (a *sshAuth) signersFunc() ([]ssh.Signer, error) { return a.signers, nil }

// close releases the agent connection.
func (a *sshAuth) close() {
	if a.agent != nil {
		_ = a.agent.Close()
	}
}

// JumpHost is one hop of a ProxyJump list.
type JumpHost struct {
	User string // "" = ssh_config User for Host, else the current user
	Host string // a host name, an address, or a Host alias of ssh_config
	Port int    // 0 = ssh_config Port for Host, else 22
}

// String formats the hop as ProxyJump writes it.
func (h JumpHost) String() string {
	s := h.Host
	if strings.Contains(s, ":") {
		s = "[" + s + "]"
	}
	if h.User != "" {
		s = h.User + "@" + s
	}
	if h.Port != 0 {
		s += ":" + strconv.Itoa(h.Port)
	}
	return s
}

// ParseProxyJump parses a ProxyJump value: comma-separated hops of the form
// [user@]host[:port] or ssh://[user@]host[:port], an IPv6 address in
// brackets. "" and "none" are no hops.
func ParseProxyJump(v string) ([]JumpHost, error) {
	v = strings.TrimSpace(v)
	if v == "" || strings.EqualFold(v, "none") {
		return nil, nil
	}
	var hops []JumpHost
	for _, raw := range strings.Split(v, ",") {
		h, err := parseJumpHost(strings.TrimSpace(raw))
		if err != nil {
			return nil, fmt.Errorf("ProxyJump %q: %w", v, err)
		}
		hops = append(hops, h)
	}
	return hops, nil
}

func parseJumpHost(s string) (JumpHost, error) {
	var h JumpHost
	s = strings.TrimPrefix(s, "ssh://")
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		h.User, s = s[:i], s[i+1:]
		if h.User == "" || strings.ContainsAny(h.User, " \t/:@") {
			return h, fmt.Errorf("invalid user %q", h.User)
		}
	}
	host, port := s, ""
	switch {
	case strings.HasPrefix(s, "["):
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return h, fmt.Errorf("unclosed '[' in %q", s)
		}
		host, port = s[1:end], strings.TrimPrefix(s[end+1:], ":")
		if rest := s[end+1:]; rest != "" && !strings.HasPrefix(rest, ":") {
			return h, fmt.Errorf("unexpected %q after the address", rest)
		}
	case strings.Count(s, ":") == 1:
		host, port, _ = strings.Cut(s, ":")
	}
	if host == "" || strings.ContainsAny(host, " \t\r\n/@") || strings.HasPrefix(host, "-") {
		return h, fmt.Errorf("invalid host %q", host)
	}
	h.Host = host
	if port != "" {
		p, err := strconv.Atoi(port)
		if err != nil || p < 1 || p > 65535 {
			return h, fmt.Errorf("invalid port %q", port)
		}
		h.Port = p
	}
	return h, nil
}
