// Package prune owns snapshot retention: it decides which snapshots of a
// dataset a job's rules keep, explains every decision, and destroys the rest
// safely.
//
// Planning ([Apply]) is a pure function of the snapshot list, the policy, the
// snapshots the caller protects and the current time. Execution ([Execute])
// lists the dataset again right before destroying, leaves alone anything
// that changed in between, and destroys in one batched zfs call per dataset.
// Bookmarks are never destroyed here.
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
// for N adjacent intervals of that length, each keeping its oldest snapshot,
// or its K oldest with "(keep=K)", or every snapshot in it with "(keep=all)".
// DURATION is a whole number with a unit: s, m, h, d (24 hours) or w (7
// days); there are no months or years, "30d" stands in for a month. Interval
// lengths must not decrease from left to right, except after intervals that
// all keep=all.
//
// The intervals are laid back to back into the past starting at the creation
// time of the youngest snapshot the grid matches: the first interval covers
// from that moment back its length (including its newest end, excluding its
// oldest), the next continues from there, and so on. Snapshots older than
// the last interval are not kept by the grid. With "1x1h(keep=all) | 24x1h |
// 30x1d | 12x30d" and a snapshot every 15 minutes this keeps the four
// snapshots of the last hour, then one per hour for a day, one per day for a
// month and one per 30 days for a year.
//
// Anchoring at the youngest snapshot rather than at the clock (as zrepl
// does) means that an outage of snapshotting (a broken cron job, a machine
// switched off for a month) never makes the grid destroy the last snapshots
// as they age: until a new snapshot appears, every pruning run keeps exactly
// what the previous one kept. Only if the youngest snapshot is dated after
// the current time is the grid anchored at the current time instead.
//
// Because the intervals slide with the youngest snapshot, the grid holds
// exactly what it says when pruning runs at a steady period that divides the
// interval lengths (after every snapshot, or every 24 hours of elapsed time)
// and snapshots are taken on time. Runs at irregular periods (a cron job at
// local midnight runs 23 and 25 hours apart around DST changes) or creation
// times that wander by seconds can leave an interval empty, as in zrepl.
package prune
