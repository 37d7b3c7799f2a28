// accept4 needs _GNU_SOURCE, which must be defined before any system header (Package.swift
// passes it); refuse to compile without it rather than fail obscurely.
#ifndef _GNU_SOURCE
#error "CLinux must be compiled with _GNU_SOURCE"
#endif

#include "CLinux.h"

#include <sched.h>
#include <sys/eventfd.h>
#include <unistd.h>

int clinux_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int clinux_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data) {
    struct epoll_event event = {.events = events, .data = {.u64 = data}};
    return epoll_ctl(epfd, op, fd, &event);
}

int clinux_epoll_wait(int epfd, struct epoll_event *events, int max, int timeout_ms) {
    return epoll_wait(epfd, events, max, timeout_ms);
}

uint32_t clinux_epoll_event_mask(const struct epoll_event *events, int index) { return events[index].events; }

uint64_t clinux_epoll_event_data(const struct epoll_event *events, int index) { return events[index].data.u64; }

int clinux_eventfd(void) { return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }

int clinux_accept4(int fd, struct sockaddr *address, socklen_t *length) {
    return accept4(fd, address, length, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

int clinux_affinity_cpu_count(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) != 0) return -1;
    return CPU_COUNT(&set);
}
