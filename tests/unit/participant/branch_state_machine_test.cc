// BranchStateMachine: every (state, protocol, call) cell against DESIGN §3-§4, plus an
// exhaustive walk over call sequences checking the protocol invariants.
#include "participant/branch_state_machine.h"

#include <gtest/gtest.h>

#include <set>

namespace verdict::participant {
namespace {

using S = BranchState;
using C = BranchCall;
using K = CallStep::Kind;

const S kStates[] = {S::kNone,      S::kActive,  S::kPrepared, S::kPrecommitted,  S::kFenced,
                     S::kCommitted, S::kAborted, S::kReadOnly, S::kOutcomeUnknown};
const C kCalls[] = {C::kOpen,  C::kExecute, C::kPrepare,        C::kPrecommit,
                    C::kFence, C::kCommit,  C::kCommitOnePhase, C::kAbort};
const Protocol kProtocols[] = {Protocol::k2PC, Protocol::k3PC};

CallStep On(S s, C c, Protocol p = Protocol::k3PC) { return BranchStateMachine::OnCall(s, p, c); }

TEST(BranchStateMachine, OnCall_Precommit) {
  EXPECT_EQ(On(S::kPrepared, C::kPrecommit).kind, K::kProceed);
  EXPECT_EQ(On(S::kPrepared, C::kPrecommit).next, S::kPrecommitted);
  EXPECT_TRUE(On(S::kPrepared, C::kPrecommit).journal);
  EXPECT_EQ(On(S::kPrecommitted, C::kPrecommit).kind, K::kRepeat);
  // FENCED refuses PRECOMMIT.
  EXPECT_EQ(On(S::kFenced, C::kPrecommit).kind, K::kRefuse);
  EXPECT_EQ(On(S::kFenced, C::kPrecommit).code, ReplyCode::kFenced);
  // 2PC branches have no PRECOMMIT.
  EXPECT_EQ(On(S::kPrepared, C::kPrecommit, Protocol::k2PC).code, ReplyCode::kWrongState);
  EXPECT_EQ(On(S::kActive, C::kPrecommit).code, ReplyCode::kWrongState);
  EXPECT_EQ(On(S::kAborted, C::kPrecommit).code, ReplyCode::kWrongState);
  EXPECT_EQ(On(S::kCommitted, C::kPrecommit).kind, K::kRepeat);
}

TEST(BranchStateMachine, OnCall_Fence) {
  EXPECT_EQ(On(S::kPrepared, C::kFence).kind, K::kProceed);
  EXPECT_EQ(On(S::kPrepared, C::kFence).next, S::kFenced);
  EXPECT_TRUE(On(S::kPrepared, C::kFence).journal);
  EXPECT_EQ(On(S::kFenced, C::kFence).kind, K::kRepeat);
  // PRECOMMITTED refuses FENCE.
  EXPECT_EQ(On(S::kPrecommitted, C::kFence).kind, K::kRefuse);
  EXPECT_EQ(On(S::kPrecommitted, C::kFence).code, ReplyCode::kPrecommitted);
  EXPECT_EQ(On(S::kActive, C::kFence).kind, K::kRefuse);
  EXPECT_EQ(On(S::kPrepared, C::kFence, Protocol::k2PC).kind, K::kRefuse);
}

TEST(BranchStateMachine, OnCall_DecisionsObeyedInEveryInDoubtState) {
  for (Protocol p : kProtocols) {
    for (S s : {S::kPrepared, S::kPrecommitted, S::kFenced}) {
      CallStep c = On(s, C::kCommit, p);
      EXPECT_EQ(c.kind, K::kProceed);
      EXPECT_EQ(c.next, S::kCommitted);
      EXPECT_TRUE(c.journal);
      CallStep a = On(s, C::kAbort, p);
      EXPECT_EQ(a.kind, K::kProceed);
      EXPECT_EQ(a.next, S::kAborted);
      EXPECT_TRUE(a.journal);
    }
  }
}

TEST(BranchStateMachine, OnCall_OutOfOrder) {
  EXPECT_EQ(On(S::kPrepared, C::kExecute).code, ReplyCode::kWrongState);  // execute after prepare
  EXPECT_EQ(On(S::kActive, C::kCommit).code, ReplyCode::kWrongState);     // commit before prepare
  EXPECT_EQ(On(S::kAborted, C::kPrepare).code, ReplyCode::kWrongState);   // prepare after abort
  EXPECT_EQ(On(S::kAborted, C::kCommit).code, ReplyCode::kWrongState);
  EXPECT_EQ(On(S::kCommitted, C::kAbort).code, ReplyCode::kWrongState);
  EXPECT_EQ(On(S::kNone, C::kCommit).code, ReplyCode::kNotFound);
  EXPECT_EQ(On(S::kNone, C::kExecute).code, ReplyCode::kNotFound);
  EXPECT_EQ(On(S::kNone, C::kPrepare).code, ReplyCode::kNotFound);
  EXPECT_EQ(On(S::kPrepared, C::kOpen).code, ReplyCode::kAlreadyExists);
  EXPECT_EQ(On(S::kAborted, C::kOpen).code, ReplyCode::kAlreadyExists);
}

TEST(BranchStateMachine, OnCall_Idempotent) {
  EXPECT_EQ(On(S::kActive, C::kOpen).kind, K::kRepeat);
  EXPECT_EQ(On(S::kPrepared, C::kPrepare).kind, K::kRepeat);
  EXPECT_EQ(On(S::kCommitted, C::kCommit).kind, K::kRepeat);
  EXPECT_EQ(On(S::kCommitted, C::kCommitOnePhase).kind, K::kRepeat);
  EXPECT_EQ(On(S::kAborted, C::kAbort).kind, K::kRepeat);
  // Presumed abort: ABORT of an unknown branch succeeds and leaves a durable tombstone.
  EXPECT_EQ(On(S::kNone, C::kAbort).kind, K::kProceed);
  EXPECT_TRUE(On(S::kNone, C::kAbort).journal);
}

TEST(BranchStateMachine, OnCall_PrepareIsDurableActiveIsNot) {
  EXPECT_TRUE(On(S::kActive, C::kPrepare).journal);
  EXPECT_FALSE(On(S::kActive, C::kAbort).journal);
  EXPECT_FALSE(On(S::kActive, C::kCommitOnePhase).journal);
  EXPECT_FALSE(On(S::kNone, C::kOpen).journal);
}

TEST(BranchStateMachine, OnTimeout_Rules) {
  for (Protocol p : kProtocols) {
    EXPECT_EQ(BranchStateMachine::OnTimeout(S::kActive, p), TimeoutAction::kAbort);
    // A prepared branch never aborts on its own.
    EXPECT_EQ(BranchStateMachine::OnTimeout(S::kPrepared, p), TimeoutAction::kInquire);
    EXPECT_EQ(BranchStateMachine::OnTimeout(S::kFenced, p), TimeoutAction::kInquire);
    EXPECT_EQ(BranchStateMachine::OnTimeout(S::kCommitted, p), TimeoutAction::kNone);
    EXPECT_EQ(BranchStateMachine::OnTimeout(S::kAborted, p), TimeoutAction::kNone);
  }
  EXPECT_EQ(BranchStateMachine::OnTimeout(S::kPrecommitted, Protocol::k3PC),
            TimeoutAction::kCommit);
}

// Walks every sequence of up to 6 calls (each call may succeed or fail when it proceeds)
// and checks the invariants that make the protocol safe.
TEST(BranchStateMachine, OnCall_ExhaustiveInvariants) {
  size_t paths = 0;
  std::function<void(S, Protocol, std::set<S>, int)> walk = [&](S s, Protocol p, std::set<S> seen,
                                                                int depth) {
    ++paths;
    if (depth == 0) return;
    for (C c : kCalls) {
      CallStep step = BranchStateMachine::OnCall(s, p, c);
      if (step.kind != K::kProceed) continue;
      S next = step.next;
      // PREPARE may end in NO (ABORTED) or READ_ONLY instead; a one-phase commit in
      // ABORTED (rolled back) or OUTCOME_UNKNOWN.
      std::vector<S> outcomes = {next};
      if (c == C::kPrepare) outcomes = {S::kPrepared, S::kAborted, S::kReadOnly};
      if (c == C::kCommitOnePhase && s == S::kActive) {
        outcomes = {S::kCommitted, S::kAborted, S::kOutcomeUnknown};
      }
      for (S n : outcomes) {
        // Never both outcomes.
        ASSERT_FALSE(seen.count(S::kAborted) && n == S::kCommitted);
        ASSERT_FALSE(seen.count(S::kCommitted) && n == S::kAborted);
        // Never YES after abort.
        ASSERT_FALSE(seen.count(S::kAborted) && n == S::kPrepared);
        // Fenced never precommits; precommitted never fences.
        ASSERT_FALSE(s == S::kFenced && n == S::kPrecommitted);
        ASSERT_FALSE(s == S::kPrecommitted && n == S::kFenced);
        // An in-doubt branch leaves doubt only by a decision, durably.
        if (BranchStateMachine::InDoubt(s) && BranchStateMachine::Decided(n)) {
          ASSERT_TRUE(c == C::kCommit || c == C::kCommitOnePhase || c == C::kAbort);
          ASSERT_TRUE(step.journal);
        }
        // Every transition into a voted state is journaled.
        if (BranchStateMachine::InDoubt(n) && n != s) {
          ASSERT_TRUE(step.journal);
        }
        auto seen2 = seen;
        seen2.insert(n);
        walk(n, p, seen2, depth - 1);
      }
    }
  };
  for (Protocol p : kProtocols) walk(S::kNone, p, {}, 6);
  EXPECT_GT(paths, 100u);
}

TEST(BranchStateMachine, OnCall_ReadOnlyLeftTheTransaction) {
  for (Protocol p : kProtocols) {
    for (C c : kCalls) EXPECT_NE(On(S::kReadOnly, c, p).kind, K::kProceed) << BranchCallName(c);
    EXPECT_EQ(On(S::kReadOnly, C::kPrepare, p).kind, K::kRepeat);  // READ_ONLY again
    // Never accepts PRECOMMIT: it can never be counted as PRECOMMITTED (DESIGN §4).
    EXPECT_EQ(On(S::kReadOnly, C::kPrecommit, p).kind, K::kRefuse);
    EXPECT_EQ(On(S::kReadOnly, C::kFence, p).kind, K::kRepeat);  // the promise holds
    // Either decision is accepted without becoming COMMITTED or ABORTED.
    EXPECT_EQ(On(S::kReadOnly, C::kCommit, p).kind, K::kRepeat);
    EXPECT_EQ(On(S::kReadOnly, C::kAbort, p).kind, K::kRepeat);
    EXPECT_EQ(On(S::kReadOnly, C::kExecute, p).code, ReplyCode::kWrongState);
    EXPECT_EQ(On(S::kReadOnly, C::kOpen, p).code, ReplyCode::kAlreadyExists);
    EXPECT_EQ(BranchStateMachine::OnTimeout(S::kReadOnly, p), TimeoutAction::kNone);
  }
  EXPECT_FALSE(BranchStateMachine::InDoubt(S::kReadOnly));
  EXPECT_FALSE(BranchStateMachine::Decided(S::kReadOnly));
  EXPECT_TRUE(BranchStateMachine::Finished(S::kReadOnly));
  EXPECT_STREQ(BranchStateName(S::kReadOnly), "READ_ONLY");
}

TEST(BranchStateMachine, OnCall_OnePhaseOutcomeUnknownStaysInDoubt) {
  for (Protocol p : kProtocols) {
    for (C c : kCalls) {
      CallStep step = On(S::kOutcomeUnknown, c, p);
      EXPECT_EQ(step.kind, K::kRefuse) << BranchCallName(c);
      EXPECT_EQ(step.code, c == C::kOpen ? ReplyCode::kAlreadyExists : ReplyCode::kUnavailable)
          << BranchCallName(c);
    }
    EXPECT_EQ(BranchStateMachine::OnTimeout(S::kOutcomeUnknown, p), TimeoutAction::kNone);
  }
  EXPECT_FALSE(BranchStateMachine::Decided(S::kOutcomeUnknown));
  EXPECT_FALSE(BranchStateMachine::Finished(S::kOutcomeUnknown));  // never forgotten
}

using T = TerminationStep::Kind;
using Peers = std::vector<std::optional<S>>;

TerminationStep Term(Protocol p, S self, Peers peers) {
  return BranchStateMachine::Terminate(p, self, peers);
}

TEST(BranchStateMachine, Terminate_2PC) {
  auto p = Protocol::k2PC;
  EXPECT_EQ(Term(p, S::kPrepared, {S::kCommitted}).kind, T::kCommit);
  EXPECT_EQ(Term(p, S::kPrepared, {S::kAborted}).kind, T::kAbort);
  EXPECT_EQ(Term(p, S::kPrepared, {S::kPrepared, S::kActive}).kind, T::kAbortPeer);
  EXPECT_EQ(Term(p, S::kPrepared, {S::kPrepared, S::kActive}).peer, 1u);
  EXPECT_EQ(Term(p, S::kPrepared, {S::kNone}).kind, T::kAbortPeer);
  // All prepared and uncertain: stay prepared. Never abort on its own.
  EXPECT_EQ(Term(p, S::kPrepared, {S::kPrepared, S::kPrepared}).kind, T::kWait);
  EXPECT_EQ(Term(p, S::kPrepared, {std::nullopt}).kind, T::kWait);
  EXPECT_EQ(Term(p, S::kPrepared, {std::nullopt, S::kCommitted}).kind, T::kCommit);
}

// Bug 1 regression: a READ_ONLY peer is neither a commit nor an abort, nor unvoted.
TEST(BranchStateMachine, Terminate_ReadOnlyPeerIsNoEvidence) {
  for (Protocol p : kProtocols) {
    EXPECT_NE(Term(p, S::kPrepared, {S::kReadOnly}).kind, T::kCommit);
    EXPECT_NE(Term(p, S::kPrepared, {S::kReadOnly, std::nullopt}).kind, T::kCommit);
    EXPECT_EQ(Term(p, S::kPrepared, {S::kReadOnly, std::nullopt}).kind, T::kWait);
    EXPECT_EQ(Term(p, S::kPrepared, {S::kReadOnly, S::kAborted}).kind, T::kAbort);
    EXPECT_EQ(Term(p, S::kPrepared, {S::kReadOnly, S::kCommitted}).kind, T::kCommit);
    EXPECT_EQ(Term(p, S::kPrepared, {S::kReadOnly, S::kActive}).kind, T::kAbortPeer);
    EXPECT_EQ(Term(p, S::kPrepared, {S::kReadOnly, S::kActive}).peer, 1u);
  }
  // 2PC: every voter prepared: stay prepared, READ_ONLY or not.
  EXPECT_EQ(Term(Protocol::k2PC, S::kPrepared, {S::kReadOnly}).kind, T::kWait);
  EXPECT_EQ(Term(Protocol::k2PC, S::kPrepared, {S::kReadOnly, S::kPrepared}).kind, T::kWait);
  // 3PC: the READ_ONLY peer is skipped by "every branch FENCED" (it never precommits).
  EXPECT_EQ(Term(Protocol::k3PC, S::kPrepared, {S::kReadOnly}).kind, T::kFence);
  EXPECT_EQ(Term(Protocol::k3PC, S::kFenced, {S::kReadOnly, S::kPrepared}).kind, T::kFence);
  EXPECT_EQ(Term(Protocol::k3PC, S::kFenced, {S::kReadOnly, S::kFenced}).kind, T::kAbort);
  EXPECT_EQ(Term(Protocol::k3PC, S::kFenced, {S::kReadOnly}).kind, T::kAbort);
}

TEST(BranchStateMachine, Terminate_3PC) {
  auto p = Protocol::k3PC;
  EXPECT_EQ(Term(p, S::kPrepared, {S::kPrecommitted}).kind, T::kCommit);
  EXPECT_EQ(Term(p, S::kFenced, {S::kCommitted}).kind, T::kCommit);
  EXPECT_EQ(Term(p, S::kPrepared, {S::kAborted, S::kPrepared}).kind, T::kAbort);
  EXPECT_EQ(Term(p, S::kPrepared, {S::kActive}).kind, T::kAbortPeer);
  // Otherwise fence everyone; abort only once self and every peer are FENCED.
  EXPECT_EQ(Term(p, S::kPrepared, {S::kPrepared}).kind, T::kFence);
  EXPECT_EQ(Term(p, S::kFenced, {S::kPrepared, S::kFenced}).kind, T::kFence);
  EXPECT_EQ(Term(p, S::kPrepared, {S::kFenced}).kind, T::kFence);
  EXPECT_EQ(Term(p, S::kFenced, {S::kFenced, S::kFenced}).kind, T::kAbort);
  // An unreachable peer: stay and retry.
  EXPECT_EQ(Term(p, S::kFenced, {S::kFenced, std::nullopt}).kind, T::kWait);
  // A PRECOMMITTED branch does not terminate this way (it commits on timeout).
  EXPECT_EQ(Term(p, S::kPrecommitted, {S::kFenced}).kind, T::kWait);
}

// No termination step ever aborts while some peer is PRECOMMITTED or COMMITTED, and none
// commits while some peer is ABORTED (exhaustive over 3 peers).
TEST(BranchStateMachine, Terminate_ExhaustiveSafety) {
  std::vector<std::optional<S>> values = {std::nullopt};
  for (S s : kStates) values.push_back(s);
  for (Protocol p : kProtocols) {
    for (S self : {S::kPrepared, S::kFenced}) {
      for (auto a : values) {
        for (auto b : values) {
          for (auto c : values) {
            Peers peers = {a, b, c};
            bool any_commit = false, any_abort = false, any_precommitted = false;
            for (auto& x : peers) {
              any_commit |= x == S::kCommitted || x == S::kPrecommitted;
              any_abort |= x == S::kAborted;
              any_precommitted |= x == S::kPrecommitted;
            }
            // Worlds the protocol cannot produce.
            if (any_commit && any_abort) continue;
            if (p == Protocol::k2PC && any_precommitted) continue;
            TerminationStep t = Term(p, self, peers);
            if (t.kind == T::kAbort) {
              EXPECT_FALSE(any_commit);
            }
            if (t.kind == T::kCommit) {
              EXPECT_FALSE(any_abort);
            }
            if (t.kind == T::kAbort && !any_abort) {
              // Abort without an aborted peer only in 3PC with everyone fenced (a READ_ONLY
              // peer never accepts PRECOMMIT: it cannot make a COMMIT possible).
              EXPECT_EQ(p, Protocol::k3PC);
              EXPECT_EQ(self, S::kFenced);
              for (auto& x : peers) {
                EXPECT_TRUE(x == S::kFenced || x == S::kReadOnly);
              }
            }
            // A READ_ONLY peer is evidence of nothing: the step is the one taken as if it
            // were not a participant at all.
            Peers without;
            std::vector<size_t> index;
            for (size_t i = 0; i < peers.size(); ++i) {
              if (peers[i] == S::kReadOnly) continue;
              without.push_back(peers[i]);
              index.push_back(i);
            }
            TerminationStep u = Term(p, self, without);
            EXPECT_EQ(t.kind, u.kind);
            if (t.kind == T::kAbortPeer && u.kind == T::kAbortPeer) {
              EXPECT_EQ(t.peer, index[u.peer]);
            }
            if (t.kind == T::kAbortPeer) {
              EXPECT_TRUE(peers[t.peer] == S::kActive || peers[t.peer] == S::kNone);
            }
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace verdict::participant
