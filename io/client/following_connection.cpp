#include "io/client/following_connection.hpp"

#include <algorithm>
#include <cassert>

namespace loyalty::io {

following_connection::following_connection(asio::io_context& ctx, std::vector<std::string> addresses,
                                           std::size_t first, follow_options f)
  : ctx_(ctx), addresses_(std::move(addresses)), next_address_(first), f_(std::move(f)), timer_(ctx) {
  assert(!addresses_.empty());
}

following_connection::~following_connection() { close(); }

void following_connection::start(std::function<void(const std::string& error)> done) {
  starting_ = std::move(done);
  start_tries_ = 0;
  attempt(next_address(), std::chrono::milliseconds(0));
}

void following_connection::submit(request r, handler h) {
  if (closed_)
    return;
  std::uint32_t i = 0;
  if (free_.empty()) {
    i = static_cast<std::uint32_t>(entries_.size());
    entries_.emplace_back();
  } else {
    i = free_.back();
    free_.pop_back();
  }
  auto& e = entries_[i];
  assert(!e.in_use);
  e.req = std::move(r);
  e.h = std::move(h);
  e.order = next_order_++;
  e.in_use = true;
  ++inflight_;
  if (ready_)
    send(i);
}

void following_connection::close() {
  if (closed_)
    return;
  closed_ = true;
  ready_ = false;
  starting_ = nullptr;
  timer_.cancel();
  if (link_)
    link_->close();
  ++link_serial_;
  for (std::uint32_t i = 0; i < entries_.size(); ++i)
    if (entries_[i].in_use)
      release(i);
}

// -- connecting -------------------------------------------------------------------------

std::string following_connection::next_address() { return addresses_[next_address_++ % addresses_.size()]; }

void following_connection::attempt(std::string address, std::chrono::milliseconds delay) {
  address_ = std::move(address);
  ready_ = false;
  if (delay.count() <= 0) {
    connect_now();
    return;
  }
  timer_.expires_after(delay);
  timer_.async_wait([w = weak_from_this()](const asio::error_code& ec) {
    auto self = w.lock();
    if (self && !ec && !self->closed_)
      self->connect_now();
  });
}

void following_connection::connect_now() {
  const auto serial = ++link_serial_;
  std::string host;
  std::uint16_t port = 0;
  if (!split_address(address_, host, port)) {
    attempt_failed("not a host:port address: \"" + address_ + "\"");
    return;
  }
  link_ = std::make_shared<async_connection>(ctx_);
  link_->on_error = [w = weak_from_this(), serial](const std::string& why) {
    auto self = w.lock();
    if (self && !self->closed_ && serial == self->link_serial_)
      self->dropped(why);
  };
  link_->connect(host, port, f_.tls, [w = weak_from_this(), serial](std::error_code ec) {
    auto self = w.lock();
    if (!self || self->closed_ || serial != self->link_serial_)
      return;
    if (ec) {
      self->attempt_failed(self->link_->connect_error());
      return;
    }
    request h;
    h.op = opcode::hello;
    h.version = 1;
    h.client_name = self->f_.name;
    h.key = self->f_.key;
    self->link_->submit(std::move(h), [w, serial](const response& a) {
      auto s = w.lock();
      if (s && !s->closed_ && serial == s->link_serial_)
        s->hello_answered(a);
    });
  });
}

void following_connection::attempt_failed(const std::string& why) {
  last_failure_ = why;
  if (link_)
    link_->close();
  ++link_serial_;
  if (starting_) {
    if (++start_tries_ < addresses_.size()) {
      attempt(next_address(), std::chrono::milliseconds(0));
      return;
    }
    auto done = std::move(starting_);
    starting_ = nullptr;
    close();
    done(addresses_.size() == 1 ? why : "no node could be reached; the last: " + why);
    return;
  }
  retry(next_address(), f_.pause);
}

void following_connection::hello_answered(const response& a) {
  if (!a.ok()) {
    const std::string why =
      "hello refused by " + address_ + ": " + std::string(to_string(a.code)) + (a.message.empty() ? "" : ": ") + a.message;
    if (starting_) {
      auto done = std::move(starting_);
      starting_ = nullptr;
      close();
      done(why);
      return;
    }
    attempt_failed(why);
    return;
  }
  ready_ = true;
  if (starting_) {
    auto done = std::move(starting_);
    starting_ = nullptr;
    done("");
  } else {
    ++counters_.reconnects;
    event(follow_event::reconnected, address_);
  }
  if (closed_ || !ready_)
    return;
  // Every request not answered yet, in the order it was submitted.
  std::vector<std::uint32_t> waiting;
  for (std::uint32_t i = 0; i < entries_.size(); ++i)
    if (entries_[i].in_use && !entries_[i].sent)
      waiting.push_back(i);
  std::sort(waiting.begin(), waiting.end(),
            [this](std::uint32_t x, std::uint32_t y) { return entries_[x].order < entries_[y].order; });
  for (auto i : waiting)
    send(i);
}

// -- requests ---------------------------------------------------------------------------

void following_connection::send(std::uint32_t i) {
  auto& e = entries_[i];
  e.sent = true;
  counters_.resent += e.ever_sent ? 1 : 0;
  e.ever_sent = true;
  const auto serial = ++e.serial;
  // [this, i, serial]: 16 bytes, kept inside std::function without an
  // allocation. `this` outlives the link's handlers: close() closes the link,
  // after which it runs none.
  link_->submit_kept(e.req, [this, i, serial](const response& a) { answered(i, serial, a); });
}

void following_connection::answered(std::uint32_t i, std::uint32_t serial, const response& a) {
  auto& e = entries_[i];
  if (!e.in_use || e.serial != serial)
    return;  // an answer on a connection given up
  if (a.code == errc::not_leader) {
    follow(a.leader);
    return;
  }
  outage_since_.reset();
  auto h = std::move(e.h);
  release(i);
  h(a);
}

void following_connection::release(std::uint32_t i) {
  auto& e = entries_[i];
  e.in_use = false;
  e.sent = false;
  e.ever_sent = false;
  ++e.serial;
  e.h = nullptr;
  free_.push_back(i);
  --inflight_;
}

// -- failures ---------------------------------------------------------------------------

void following_connection::lose_connection() {
  if (!outage_since_)
    outage_since_ = steady::now();
  ready_ = false;
  if (link_)
    link_->close();
  ++link_serial_;
  for (auto& e : entries_)
    if (e.in_use && e.sent) {
      e.sent = false;
      ++e.serial;
    }
}

void following_connection::follow(const std::string& leader) {
  ++counters_.not_leader;
  last_failure_ = "not_leader from " + address_ + (leader.empty() ? " (no leader known)" : ", leader " + leader);
  lose_connection();
  event(follow_event::not_leader, leader);
  if (leader.empty())
    retry(next_address(), f_.pause);  // an election: ask again shortly
  else
    retry(leader, std::chrono::milliseconds(0));
}

void following_connection::dropped(const std::string& why) {
  if (!ready_) {  // before hello was answered: a failed attempt
    attempt_failed(address_ + ": " + why);
    return;
  }
  ++counters_.dropped;
  last_failure_ = address_ + ": " + why;
  lose_connection();
  event(follow_event::dropped, why);
  retry(next_address(), std::chrono::milliseconds(0));
}

void following_connection::retry(std::string address, std::chrono::milliseconds delay) {
  if (closed_)  // by its owner, in on_event
    return;
  if (outage_since_ && steady::now() - *outage_since_ >= f_.patience) {
    give_up("no node served for " + std::to_string(f_.patience.count()) + " ms; the last failure: " + last_failure_);
    return;
  }
  attempt(std::move(address), delay);
}

void following_connection::give_up(const std::string& why) {
  auto report = on_error;
  close();
  if (report)
    report(why);
}

void following_connection::event(follow_event e, const std::string& detail) {
  if (on_event)
    on_event(e, detail);
}

} // namespace loyalty::io
