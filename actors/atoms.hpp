// CAF atoms of the member / brand / program actors (CAF 0.17: atom_constant).
#pragma once

#include <caf/atom.hpp>

namespace loyalty::actors {

using transfer_done_atom = caf::atom_constant<caf::atom("xferdone")>;  // receiver took (or refused) a transfer leg
using housekeep_atom = caf::atom_constant<caf::atom("housekeep")>;    // a hold may have expired
using passivate_atom = caf::atom_constant<caf::atom("passivate")>;  // idle: leave memory
using supervise_atom = caf::atom_constant<caf::atom("supervise")>;  // brand: monitor this member
using sweep_atom = caf::atom_constant<caf::atom("sweep")>;          // root: periodic passivation sweep
using household_reply_atom = caf::atom_constant<caf::atom("hhreply")>;  // a member's answer to the household coordinator
using reload_atom = caf::atom_constant<caf::atom("reload")>;        // partner: a new program version is in effect

} // namespace loyalty::actors
