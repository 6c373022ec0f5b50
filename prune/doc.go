// Package prune owns snapshot retention: it decides which snapshots of a
// dataset a job's rules keep, explains every decision, and destroys the rest
// safely.
//
// Planning ([Apply]) is a pure function of the snapshot list, the policy, the
// snapshots the caller protects and the current time. Execution ([Execute])
// lists the dataset again right before destroying, leaves alone anything
// that changed in between, and destroys in one batched zfs call per dataset
// (several when the names do not fit in one argument). Bookmarks are never destroyed here.
//
// # Rules
//
// A policy is a list of rules. Rules only ever keep snapshots: a snapshot is
// destroyed when no rule keeps it (and nothing below protects it). The rules
// are:
//
//   - grid: a retention grid such as "1x1h(keep=all) | 24x1h | 30x1d | 12x30d",
//     optionally limited to snapshot names matching a regex. See "The grid".
//   - last_n: keeps the N most recent snapshots (by creation order, createtxg)
//     whose name matches its regex, or of all snapshots when it has none.
//   - regex: keeps the snapshots whose name matches the regex; with negate,
//     the snapshots whose name does not match.
//   - not_replicated: keeps the snapshots that have not yet reached every
//     target (those created after the oldest replication cursor).
//
// Regexes are Go (RE2) regular expressions searched anywhere in the snapshot
// name (the part after '@'); anchor them with ^ to match a prefix.
//
// # What is never destroyed
//
//   - anything, when the policy has no rules;
//   - held snapshots (zfs hold), and snapshots the caller protects, such as
//     one a replication target still needs as its incremental base;
//   - snapshots created after the current time (a clock that went backwards);
//   - snapshots outside the policy's scope (next section);
//   - bookmarks.
//
// # Scope: which snapshots the rules are about
//
// A snapshot can be destroyed only if its name matches the regex of at least
// one grid, last_n or regex rule. A grid or last_n rule without a regex
// matches every name. A regex rule counts with its regex as written, whether
// or not negate is set. not_replicated has no regex and never brings a
// snapshot into scope: it can only keep. Snapshots out of scope are kept with
// the reason "outside every rule's regex".
//
// So with the rules grid on "^zsync_", not_replicated and last_n 3 on
// "^zsync_", a snapshot named "before_upgrade" that someone took by hand is
// never destroyed, replicated or not: the rules are about zsync's snapshots
// only. A policy made of not_replicated alone destroys nothing. To prune
// other snapshots, say so: a grid or last_n without a regex covers every
// snapshot, and a rule such as regex "^manual_" with negate brings the
// manual_ snapshots into scope while keeping every other name, so replicated
// manual_ snapshots that no other rule keeps are destroyed.
//
// # The grid
//
// The grid is a list of intervals separated by "|". "N x DURATION" stands
// for N buckets of that length, each keeping its oldest snapshot, or its K
// oldest with "(keep=K)", or every snapshot in it with "(keep=all)".
// DURATION is a whole number with a unit: s, m, h, d (24 hours) or w (7
// days); there are no months or years, "30d" stands in for a month. Interval
// lengths must not decrease from left to right, except after intervals that
// all keep=all.
//
// Buckets are fixed periods of time. A bucket of length L is one of the
// periods from k*L to (k+1)*L after the Unix epoch (1970-01-01 00:00 UTC),
// including its start and excluding its end. So 1h buckets are the clock
// hours, 1d buckets are days in UTC (not local days: in Berlin they begin
// at 01:00 or 02:00 local time), 1w buckets begin on Thursdays (the epoch
// was a Thursday) and 30d buckets are 30-day periods counted from the epoch,
// not calendar months. A snapshot's bucket of a given length never changes.
//
// The intervals are laid back to back into the past from the anchor, the
// creation time of the youngest snapshot the grid matches (or the current
// time, if that snapshot claims to be from the future). Each interval
// begins where the previous one ends (the first at the anchor) and covers
//
//   - bucket 0: what is left of the bucket of its length that it begins in,
//     that is from the start of that bucket to where the interval begins
//     (nothing if it begins exactly on a bucket boundary; for the first
//     interval, the bucket holding the anchor, up to and including it), then
//   - buckets 1 to N: the N whole buckets before that, youngest first.
//
// Snapshots older than the last interval are not kept by the grid. Reasons
// name the bucket: "grid 24x1h bucket 3 (age 4h10m)". As in zrepl, bucket 0
// of the first interval keeps only its K oldest, so the newest snapshots
// survive only if the grid starts with a keep=all interval such as
// "1x1h(keep=all)".
//
// With "1x1h(keep=all) | 24x1h | 30x1d | 12x30d", a snapshot every 15
// minutes and the youngest taken at 12:15 UTC, the grid keeps every
// snapshot since 11:00 (bucket 0 from 12:00, bucket 1 from 11:00: always
// at least the last hour, at most two), the one taken on the hour for each
// of the 24 hours before that, the first one of yesterday (bucket 0:
// yesterday before 11:00) and of each of the 30 whole days before, and the
// first one of each 30-day period back to about a year ago. That is up to
// one bucket more per interval than N, by design: every interval holds N
// whole buckets.
//
// What this guarantees:
//
//   - A bucket's K oldest snapshots stay its K oldest: younger ones cannot
//     displace them. Once an interval keeps a snapshot, it keeps it until
//     the snapshot's bucket ages into the next interval or off the grid.
//   - When each length is a multiple of the previous one (1h, 1d, 30d; or
//     1d, 1w), a longer bucket is made of whole shorter ones, so its oldest
//     snapshot is also the oldest of a shorter bucket and was kept while it
//     went through the shorter intervals. So every bucket holds the K
//     oldest snapshots ever taken in it (if K is no larger than in the
//     interval before): never fewer than the grid says unless fewer were
//     taken, and the same snapshots whenever and however often pruning
//     runs (after every snapshot, every 6 hours, or at local midnight, 23
//     and 25 hours apart around DST changes) and however creation times
//     wander by a few seconds.
//   - When a length is not a multiple of the previous one (1w then 30d), or
//     K is larger than before, a longer bucket keeps the oldest of what the
//     shorter intervals left: possibly a little younger than its first
//     snapshot, and short of K only where the shorter buckets kept too few.
//
// This deliberately differs from zrepl, whose buckets slide: they are laid
// back from the youngest snapshot at exact multiples of their length, so a
// snapshot's bucket changes as new snapshots arrive. Keeping the oldest of
// a sliding bucket works only if pruning runs at a period that divides
// every length and snapshots are taken exactly on time. Otherwise a bucket
// boundary passes between the snapshot kept earlier and its neighbours:
// the kept one moves to the older bucket and is destroyed there as not the
// oldest, while the next younger one was destroyed by an earlier run.
// Around DST changes, with a cron job at local midnight, or with creation
// times a few seconds late, as cron is, that leaves buckets empty for good:
// days missing from "one per day for 30 days" (zrepl issue #612). Fixed
// buckets cost up to one partial bucket per interval of extra snapshots and
// make day buckets follow UTC rather than local time.
//
// Anchoring at the youngest snapshot rather than at the clock means that an
// outage of snapshotting (a broken cron job, a machine switched off for a
// month) never makes the grid destroy the last snapshots as they age: until
// a new snapshot appears, every pruning run keeps exactly what the previous
// one kept.
package prune
