// Package sync owns replication: which datasets go where, the plan that
// brings one target dataset up to date with its sender, and the ZFS objects
// that carry continuity from one run to the next.
//
// Inside this package the standard library's sync is imported as stdsync.
// It imports no zsync package other than zfs.
//
// # Pure parts
//
// Planning and reconciliation are pure functions over version lists, so they
// are tested one line per case:
//
//   - tree.go maps sender datasets to target datasets (TargetName for
//     configured jobs, OneOffTarget for one-off use), orders datasets parents
//     first and finds the placeholder datasets to create.
//   - plan.go turns the sender's snapshots and bookmarks, the receiver's
//     snapshots and the receiver's resume token into a Plan of Steps, or a
//     typed conflict (*DivergedError, *NoCommonError, ...). Versions are
//     matched by GUID and ordered by createtxg, never by name or creation
//     time.
//   - names.go builds and parses the names of zsync's bookmarks and hold
//     tags; reconcile.go finds them in a listing and decides which are stale.
//   - liveness.go groups them into relationships (Relations) and decides
//     whether a relationship is still used by a configured job (Judge):
//     live, orphaned (no job uses it; released only on request) or unknown
//     (something that could own it cannot be checked, so it is kept).
//
// # Continuity model
//
// Every replication relationship (one source tree to one target root) has a
// target id, 16 random lowercase hex characters stored on the target root as
// the user property zsync:target-id (TargetIDProperty) by the first run.
// Renaming a job changes nothing, and two targets of one source never share
// or destroy each other's objects, because every name zsync creates carries
// the target id (TID below, GUID as %016x):
//
//	replication cursor   bookmark  source  <ds>#zsync_cursor_T<TID>_G<GUID>
//	tentative cursor     bookmark  source  <ds>#zsync_tentative_T<TID>_G<GUID>
//	step hold            hold tag  source  zsync_step_R<SID> on a step's from and to
//	last-received hold   hold tag  target  zsync_last_R<RID> on the newest received snapshot
//
// The hold tags carry a target root's id rather than one relationship's,
// so that one `zfs hold` or `zfs release` per pool serves every dataset of
// a level: RID is the target root's id itself (a last-received hold on
// target dataset X belongs to RelationID(RID, X)), SID is StepRootID of the
// root's id and name (a step hold on source dataset S belongs to the
// relationship of S's target below that root; ListAbstractionsWith
// resolves it with the job's mapping). Tags of the older per-relationship
// form, zsync_step_T<TID> and zsync_last_T<TID>, are still recognised and
// released as they go stale.
//
// The replication cursor marks the last snapshot the target confirmed. Being
// a bookmark, it stays a valid incremental source (zfs send -i) after the
// snapshot itself is pruned, so the sender's retention never breaks the
// chain. A bookmark whose name's GUID differs from its actual guid was
// copied or tinkered with: it is reported and never trusted.
//
// Step holds keep a step's from snapshot and every snapshot the step may
// deliver on the source while the step is in progress: its to and, for a
// batched -I step, every snapshot in between, since the target commits each
// of them as it arrives. An interrupted receive can then always be resumed
// (zfs send -t) in a later run, and whatever prune runs in between, the
// target's newest snapshot stays known to the sender, so the next run never
// meets a divergence of its own making. Tentative cursors replace them when
// resumability is not wanted: bookmarks of the same delivered snapshots,
// made before the send, that keep an incremental base wherever the run dies
// (after a kill mid-stream, after the receive, before the cursor moved). The last-received hold keeps the target's newest
// received snapshot, which is the next step's incremental base on the target.
//
// # Protection levels
//
// ProtectionResumability (the default) maintains step holds, the cursor and
// the last-received hold; ProtectionIncremental maintains the cursor,
// tentative cursors (instead of step holds) and the last-received hold;
// ProtectionNothing maintains none. Abstractions of a kind the level does
// not allow are stale (Protection.Allows).
//
// # Lifecycle of one step
//
// The datasets of one depth of the tree (parents before children) are
// planned first, all of them. Then:
//
//  1. the step holds of every step of the depth: on each step's from (if a
//     snapshot) and on every snapshot it delivers (to, and with -I those
//     in between), in one call per pool (they all carry the job's step
//     root tag); what that call fails on, each step holds by itself before
//     its send; at level incremental each step makes a tentative cursor of
//     each delivered snapshot instead;
//  2. each dataset's steps: zfs send | zfs recv -s (zfs send -t when the
//     step resumes a token).
//
// When the data of the depth is done, the datasets whose steps all
// succeeded are finished from one listing per side for all of them:
//
//  3. verify that the target's newest snapshot has the last step's to GUID
//     (otherwise the dataset fails and its children are skipped);
//  4. place the new last-received holds on the received to snapshots, one
//     call per pool, and make the new cursors (one channel program per
//     pool as root, else one bookmark each);
//  5. destroy each dataset's old cursor and the tentative cursors it
//     supersedes (one destroy per dataset: zfs destroys one bookmark per
//     call);
//  6. after every dataset of the depth is past 4, release the step holds
//     and the old last-received holds, one call per pool and tag (a
//     failure to release step holds fails the datasets it names).
//
// Until then the old cursor and hold keep the relationship's base and the
// step holds keep everything the steps delivered, so a run killed between
// the data and its finish converges like one killed inside a step.
//
// Every transition is idempotent (an existing hold or bookmark of the same
// name and GUID counts as success), so a run killed at any point is repaired
// by the next one: it plans again from the one listing, resumes or aborts
// the partial receive, and reconciles. Reconciliation (Stale for the source
// dataset, StaleTarget for the target dataset) removes whatever the rules
// say is stale, in batches, so that after a run there is exactly one cursor
// and one last-received hold per (dataset, target), and step holds only for
// an interrupted step. Because a new cursor or hold is always created before
// the old one goes, the reconciler never declares the old one stale while
// the new one is missing. StaleAll applies conservative rules to everything
// found, for `zsync holds release-stale`; a relationship no configured job
// uses any more (Judge says Orphaned) is released whole only on request.
package sync
