package wire

import (
	"encoding/hex"
	"fmt"
)

// Striping: one stream over several SSH channels of one connection, so that
// a long link is not bound by one channel's window (about 2 MiB in flight
// per channel, whatever the bandwidth).
//
//  1. On its first connection (the primary) the client asks stripe_open
//     with the number of channels it wants in all (StripeOpenArgs.Streams,
//     the primary included). The server answers a session id, a secret
//     token and the number of channels it grants, 2 or more and at most
//     the number asked (StripeOpenResult), and waits for the others.
//  2. The client opens granted-1 more sessions running the same command (an
//     SSH forced command runs for each) and sends stripe_join on each, with
//     the session id, the token and the channel's index (1..granted-1). The
//     joining server hands the channel to the primary server over a local
//     socket that only a process of the same user can reach, and answers
//     ok once the primary accepted it; from then on it relays frames
//     between its channel and the primary server and answers nothing else.
//  3. The client asks stripe_ready on the primary; once it answered ok,
//     every stream of the connection (send and receive) is striped: the
//     stream's frames after the ok response (data frames and the end
//     frame), numbered from 0, travel frame i on channel i mod granted
//     (channel 0 is the primary). Everything else (requests, responses,
//     cancel, error frames) stays on the primary.
//
// A server that does not know stripe_open answers it as unsupported; the
// client then carries on with one channel.
const (
	OpStripeOpen  = "stripe_open"
	OpStripeJoin  = "stripe_join"
	OpStripeReady = "stripe_ready"
)

// MaxStripes bounds the channels of one striped connection.
const MaxStripes = 16

// Sizes of the striping secrets, in bytes (hex-encoded on the wire).
const (
	StripeSessionLen = 16
	StripeTokenLen   = 32
)

type (
	// StripeOpenArgs asks for a striped connection of Streams channels in
	// all.
	StripeOpenArgs struct {
		Streams int `json:"streams"`
	}
	// StripeOpenResult names the session the other channels join, and
	// how many channels the server grants in all (at most Streams; the
	// far host may cap it per client).
	StripeOpenResult struct {
		Session string `json:"session"`
		Token   string `json:"token"`
		Streams int    `json:"streams"`
	}
	// StripeJoinArgs joins this channel to a session as channel Index.
	StripeJoinArgs struct {
		Session string `json:"session"`
		Token   string `json:"token"`
		Index   int    `json:"index"`
	}
	// StripeReadyArgs has no arguments.
	StripeReadyArgs struct{}
)

// Validate checks the number of channels.
func (a StripeOpenArgs) Validate() error {
	if a.Streams < 2 || a.Streams > MaxStripes {
		return fmt.Errorf("%w: a striped connection has 2 to %d channels, not %d", ErrProtocol, MaxStripes, a.Streams)
	}
	return nil
}

// Validate checks the session result's shape, for a request of asked
// channels.
func (r StripeOpenResult) Validate(asked int) error {
	if err := r.validateSecrets(); err != nil {
		return err
	}
	if r.Streams < 2 || r.Streams > asked {
		return fmt.Errorf("%w: %d stripe channels granted, %d asked", ErrProtocol, r.Streams, asked)
	}
	return nil
}

func (r StripeOpenResult) validateSecrets() error {
	if err := validateHex("session", r.Session, StripeSessionLen); err != nil {
		return err
	}
	return validateHex("token", r.Token, StripeTokenLen)
}

// Validate checks the secrets' shapes and the index.
func (a StripeJoinArgs) Validate() error {
	if err := (StripeOpenResult{Session: a.Session, Token: a.Token}).validateSecrets(); err != nil {
		return err
	}
	if a.Index < 1 || a.Index >= MaxStripes {
		return fmt.Errorf("%w: stripe channel index %d is not in 1..%d", ErrProtocol, a.Index, MaxStripes-1)
	}
	return nil
}

// Validate accepts the empty arguments.
func (StripeReadyArgs) Validate() error { return nil }

func validateHex(what, s string, n int) error {
	if len(s) != 2*n {
		return fmt.Errorf("%w: stripe %s of %d characters, want %d", ErrProtocol, what, len(s), 2*n)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return fmt.Errorf("%w: stripe %s is not lower-case hex", ErrProtocol, what)
		}
	}
	if _, err := hex.DecodeString(s); err != nil {
		return fmt.Errorf("%w: stripe %s: %w", ErrProtocol, what, err)
	}
	return nil
}
