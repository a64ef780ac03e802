// A byte forwarder between two Unix-domain sockets that does no work at all: the cheapest
// possible process in the path between a client and PostgreSQL. bench/forwarder/run.sh
// puts it between pgbench and the server to measure what an extra process hop per round
// trip costs on this machine, whatever that process does (docs/performance.md, "The cost
// of a process in the path").
//   forwarder epoll|threads LISTEN_PATH TARGET_PATH
// epoll: one thread, one epoll set for every connection. threads: a thread per client
// connection, blocked in poll() on its two sockets (like a thread-per-connection server).
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static const char* target_path;

static int unix_socket(const char* path, int listening) {
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un a;
  memset(&a, 0, sizeof a);
  a.sun_family = AF_UNIX;
  if (fd < 0 || strlen(path) >= sizeof a.sun_path) return -1;
  strcpy(a.sun_path, path);
  if (listening) {
    unlink(path);
    if (bind(fd, (struct sockaddr*)&a, sizeof a) != 0 || listen(fd, 128) != 0) return -1;
  } else if (connect(fd, (struct sockaddr*)&a, sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Copies what is readable on `from` to `to`; 0 when either side is gone.
static int forward(int from, int to) {
  static __thread char buf[65536];
  ssize_t n = read(from, buf, sizeof buf);
  if (n <= 0) return 0;
  for (ssize_t off = 0; off < n;) {
    ssize_t w = write(to, buf + off, (size_t)(n - off));
    if (w <= 0) return 0;
    off += w;
  }
  return 1;
}

static void* serve_pair(void* arg) {
  int client = (int)(long)arg, server = unix_socket(target_path, 0);
  struct pollfd p[2] = {{client, POLLIN, 0}, {server, POLLIN, 0}};
  while (server >= 0 && poll(p, 2, -1) > 0) {
    if ((p[0].revents && !forward(client, server)) || (p[1].revents && !forward(server, client))) {
      break;
    }
  }
  close(client);
  if (server >= 0) close(server);
  return NULL;
}

static void run_threads(int listener) {
  for (;;) {
    int c = accept(listener, NULL, NULL);
    if (c < 0) continue;
    pthread_t t;
    if (pthread_create(&t, NULL, serve_pair, (void*)(long)c) == 0) pthread_detach(t);
  }
}

static void run_epoll(int listener) {
  static int peer[1 << 16];
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = listener};
  epoll_ctl(ep, EPOLL_CTL_ADD, listener, &ev);
  struct epoll_event ready[64];
  for (;;) {
    int n = epoll_wait(ep, ready, 64, -1);
    for (int i = 0; i < n; ++i) {
      int fd = ready[i].data.fd;
      if (fd == listener) {
        int c = accept(listener, NULL, NULL), s = unix_socket(target_path, 0);
        if (c < 0 || s < 0 || c >= (1 << 16) || s >= (1 << 16)) {
          if (c >= 0) close(c);
          if (s >= 0) close(s);
          continue;
        }
        peer[c] = s;
        peer[s] = c;
        ev.data.fd = c;
        epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
        ev.data.fd = s;
        epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
      } else if (!forward(fd, peer[fd])) {
        close(fd);
        close(peer[fd]);
      }
    }
  }
}

int main(int argc, char** argv) {
  if (argc != 4 || (strcmp(argv[1], "epoll") != 0 && strcmp(argv[1], "threads") != 0)) {
    fprintf(stderr, "usage: forwarder epoll|threads LISTEN_PATH TARGET_PATH\n");
    return 2;
  }
  target_path = argv[3];
  int listener = unix_socket(argv[2], 1);
  if (listener < 0) {
    perror(argv[2]);
    return 1;
  }
  if (strcmp(argv[1], "epoll") == 0) {
    run_epoll(listener);
  } else {
    run_threads(listener);
  }
  return 0;
}
