// CLinux: the Linux calls Swift's Glibc module lacks (epoll, eventfd, accept4). Only thin
// wrappers live here; every decision is made in Swift (ProxyServer/Loop).
#ifndef IAP_CLINUX_H
#define IAP_CLINUX_H

#include <stdint.h>
#include <sys/epoll.h>
#include <sys/socket.h>

/// epoll_create1(EPOLL_CLOEXEC).
int clinux_epoll_create(void);
/// epoll_ctl with the event mask and 64-bit user data packed into an epoll_event.
int clinux_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data);
/// epoll_wait; `events` is a caller-owned array of `max` entries.
int clinux_epoll_wait(int epfd, struct epoll_event *events, int max, int timeout_ms);
/// The mask and user data of one returned event (epoll_event is packed on x86_64).
uint32_t clinux_epoll_event_mask(const struct epoll_event *events, int index);
uint64_t clinux_epoll_event_data(const struct epoll_event *events, int index);
/// eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK).
int clinux_eventfd(void);
/// CPUs in this thread's affinity mask (sched_getaffinity + CPU_COUNT, a macro), or -1.
int clinux_affinity_cpu_count(void);
/// accept4 with SOCK_NONBLOCK | SOCK_CLOEXEC.
int clinux_accept4(int fd, struct sockaddr *address, socklen_t *length);

#endif
