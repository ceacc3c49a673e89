// A small HTTP/1.1 server on 127.0.0.1 for the outbound client's tests and benchmarks (not part
// of the module's interface). Plain POSIX sockets, one thread per connection, keep-alive.
//
// Routes (anything else is 404):
//   /status/N        answers N with body "status N"
//   /redirect        302 to /status/200 on this server
//   /retry-after     429 with "Retry-After: 7"
//   /large/N         200 with N bytes of 'x'
//   /echo            200 with body "<METHOD>\n<request headers, one per line>\n\n<body>"
//   /hang            never answers until Release() or the server stops, then closes
//   /reset           starts a 200 with Content-Length 1000, sends 7 bytes, resets the connection
//   /close           200, "Connection: close", then closes
//
// Thread safety: every public member may be called from any thread.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace evo::outbound::test_support {

class TestServer {
 public:
  // Listens on 127.0.0.1, or on [::1] when `ipv6`; see ok().
  explicit TestServer(bool ipv6 = false) : ipv6_(ipv6) {
    listen_fd_ = socket(ipv6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_storage storage{};
    socklen_t len = 0;
    if (ipv6) {
      auto* addr = reinterpret_cast<sockaddr_in6*>(&storage);
      addr->sin6_family = AF_INET6;
      addr->sin6_addr = in6addr_loopback;
      len = sizeof(sockaddr_in6);
    } else {
      auto* addr = reinterpret_cast<sockaddr_in*>(&storage);
      addr->sin_family = AF_INET;
      addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      len = sizeof(sockaddr_in);
    }
    auto* sa = reinterpret_cast<sockaddr*>(&storage);
    if (bind(listen_fd_, sa, len) != 0 || listen(listen_fd_, 512) != 0) {
      close(listen_fd_);
      listen_fd_ = -1;
      return;
    }
    getsockname(listen_fd_, sa, &len);
    port_ = ntohs(ipv6 ? reinterpret_cast<sockaddr_in6*>(&storage)->sin6_port
                       : reinterpret_cast<sockaddr_in*>(&storage)->sin_port);
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  }

  // False when the socket could not be bound (no IPv6 loopback here).
  bool ok() const { return listen_fd_ >= 0; }

  ~TestServer() { Stop(); }
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;

  uint16_t port() const { return port_; }
  // "http://127.0.0.1:<port><path>" ("http://[::1]:..." for IPv6).
  std::string Url(std::string_view path) const {
    return std::string(ipv6_ ? "http://[::1]:" : "http://127.0.0.1:") + std::to_string(port_) +
           std::string(path);
  }

  // Connections accepted and requests read so far.
  int connections() const {
    std::lock_guard lock(mu_);
    return connections_;
  }
  int requests() const {
    std::lock_guard lock(mu_);
    return requests_;
  }
  // Waits until `n` requests have been read (true) or `timeout` passes (false).
  bool WaitForRequests(int n, std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return requests_ >= n; });
  }

  // Lets every /hang request finish (by closing its connection).
  void Release() {
    std::lock_guard lock(mu_);
    released_ = true;
    cv_.notify_all();
  }

  void Stop() {
    if (!ok()) {
      return;
    }
    {
      std::lock_guard lock(mu_);
      if (stopping_) {
        return;
      }
      stopping_ = true;
      cv_.notify_all();
      for (int fd : conn_fds_) {
        shutdown(fd, SHUT_RDWR);
      }
    }
    shutdown(listen_fd_, SHUT_RDWR);
    accept_thread_.join();
    close(listen_fd_);
    std::vector<std::thread> threads;
    {
      std::lock_guard lock(mu_);
      threads.swap(conn_threads_);
    }
    for (auto& t : threads) {
      t.join();
    }
  }

 private:
  void AcceptLoop() {
    while (true) {
      int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      std::lock_guard lock(mu_);
      if (stopping_) {
        if (fd >= 0) {
          close(fd);
        }
        return;
      }
      if (fd < 0) {
        continue;
      }
      ++connections_;
      conn_fds_.push_back(fd);
      conn_threads_.emplace_back([this, fd] { Serve(fd); });
    }
  }

  static bool SendAll(int fd, std::string_view data) {
    while (!data.empty()) {
      ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) {
        return false;
      }
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  static std::string Reply(int status, std::string_view body, std::string_view extra = {}) {
    return "HTTP/1.1 " + std::to_string(status) +
           " X\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" + std::string(extra) +
           "\r\n" + std::string(body);
  }

  void Serve(int fd) {
    std::string buffer;
    char chunk[16384];
    bool open = true;
    while (open) {
      size_t header_end;
      while ((header_end = buffer.find("\r\n\r\n")) == std::string::npos) {
        ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
        if (n <= 0) {
          open = false;
          break;
        }
        buffer.append(chunk, static_cast<size_t>(n));
      }
      if (!open) {
        break;
      }
      const std::string head = buffer.substr(0, header_end);
      size_t content_length = 0;
      std::string header_lines;
      size_t line_start = head.find("\r\n");
      const std::string request_line = head.substr(0, line_start);
      while (line_start != std::string::npos) {
        size_t next = head.find("\r\n", line_start + 2);
        std::string line = head.substr(
            line_start + 2, next == std::string::npos ? std::string::npos : next - line_start - 2);
        header_lines += line + "\n";
        std::string lower = line;
        for (char& c : lower) {
          c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        }
        if (lower.rfind("content-length:", 0) == 0) {
          content_length = std::stoul(line.substr(15));
        }
        line_start = next;
      }
      while (buffer.size() < header_end + 4 + content_length) {
        ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
        if (n <= 0) {
          open = false;
          break;
        }
        buffer.append(chunk, static_cast<size_t>(n));
      }
      if (!open) {
        break;
      }
      const std::string body = buffer.substr(header_end + 4, content_length);
      buffer.erase(0, header_end + 4 + content_length);
      {
        std::lock_guard lock(mu_);
        ++requests_;
        cv_.notify_all();
      }
      const size_t sp1 = request_line.find(' ');
      const size_t sp2 = request_line.find(' ', sp1 + 1);
      const std::string method = request_line.substr(0, sp1);
      const std::string path = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
      open = Handle(fd, method, path, header_lines, body);
    }
    {
      std::lock_guard lock(mu_);
      std::erase(conn_fds_, fd);
    }
    close(fd);
  }

  // Answers one request; false when the connection must close.
  bool Handle(int fd, const std::string& method, const std::string& path,
              const std::string& header_lines, const std::string& body) {
    if (path.rfind("/status/", 0) == 0) {
      const int status = std::atoi(path.c_str() + 8);
      return SendAll(fd, Reply(status, "status " + std::to_string(status)));
    }
    if (path == "/redirect") {
      return SendAll(fd, Reply(302, "moved", "Location: " + Url("/status/200") + "\r\n"));
    }
    if (path == "/retry-after") {
      return SendAll(fd, Reply(429, "slow down", "Retry-After: 7\r\n"));
    }
    if (path.rfind("/large/", 0) == 0) {
      return SendAll(fd, Reply(200, std::string(std::stoul(path.substr(7)), 'x')));
    }
    if (path == "/echo") {
      return SendAll(fd, Reply(200, method + "\n" + header_lines + "\n" + body));
    }
    if (path == "/hang") {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return released_ || stopping_; });
      return false;
    }
    if (path == "/reset") {
      SendAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial");
      linger hard{1, 0};  // close with RST instead of FIN
      setsockopt(fd, SOL_SOCKET, SO_LINGER, &hard, sizeof(hard));
      return false;
    }
    if (path == "/close") {
      SendAll(fd, Reply(200, "bye", "Connection: close\r\n"));
      return false;
    }
    return SendAll(fd, Reply(404, "not found"));
  }

  const bool ipv6_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::thread accept_thread_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  int connections_ = 0;                    // guarded by mu_
  int requests_ = 0;                       // guarded by mu_
  bool released_ = false;                  // guarded by mu_
  bool stopping_ = false;                  // guarded by mu_
  std::vector<int> conn_fds_;              // guarded by mu_
  std::vector<std::thread> conn_threads_;  // guarded by mu_
};

}  // namespace evo::outbound::test_support
