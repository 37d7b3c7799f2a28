import CLinux
import Glibc
import IAPAuth

/// Calls `onChange` when the content of any watched file changed and settled, on its own thread.
///
/// It watches the files' directories with inotify — which sees in-place writes (on close), editor
/// rename-swaps, Kubernetes ConfigMap `..data` symlink swaps, deletes and re-creates alike — and
/// also looks every second (the fallback where inotify is missing or misses a swap). A change is
/// acted on only when two looks 150 ms apart agree and no watched file is open for writing
/// (modified, not yet closed): a half-written file is never handed over. What `onChange` does
/// with a broken file (keep the last good policy) is the caller's business. `requestReload`
/// (SIGHUP) runs `onChange` once even if nothing changed, under the same rules.
public final class FileWatcher: Sendable {
    private struct State {
        var files: [String]
        var stopping = false
        var reloadRequested = false
    }

    private let state: Locked<State>
    /// Written by `stop` and `requestReload` to wake the thread at once (its poll would otherwise
    /// sleep up to a second).
    private let wakeFD = clinux_eventfd()
    /// Written once by the thread when it is watching; `start` waits for it.
    private let readyFD = clinux_eventfd()
    private let onChange: @Sendable (_ trigger: String) -> [String]?
    private let thread = Locked<pthread_t?>(nil)
    /// Milliseconds between looks when nothing signalled a change.
    private let pollInterval: Int32

    /// `onChange` returns the files to watch from then on (a reload may name new ones), or nil to
    /// keep the current list.
    public init(
        files: [String], pollIntervalMilliseconds: Int32 = 1000,
        onChange: @escaping @Sendable (_ trigger: String) -> [String]?
    ) {
        state = Locked(State(files: files))
        self.onChange = onChange
        pollInterval = pollIntervalMilliseconds
    }

    /// Returns once the thread has set up inotify and taken its first look, so an edit made
    /// right after `start` is seen as a change.
    public func start() {
        let handoff = Unmanaged.passRetained(self)
        var handle = pthread_t()
        let result = pthread_create(&handle, nil, { argument in
            Unmanaged<FileWatcher>.fromOpaque(argument!).takeRetainedValue().run()
            return nil
        }, handoff.toOpaque())
        precondition(result == 0, "pthread_create: \(result)")
        thread.withLock { $0 = handle }
        var ready = pollfd(fd: readyFD, events: Int16(POLLIN), revents: 0)
        while poll(&ready, 1, -1) < 0 && errno == EINTR {}
    }

    public func stop() {
        state.withLock { $0.stopping = true }
        wake()
        if let handle = thread.withLock({ $0.take() }) { pthread_join(handle, nil) }
    }

    /// Reload now (SIGHUP), once no watched file is open for writing and two looks agree.
    public func requestReload() {
        state.withLock { $0.reloadRequested = true }
        wake()
    }

    private func wake() {
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
    }

    deinit {
        close(wakeFD)
        close(readyFD)
    }

    private var files: [String] { state.withLock { $0.files } }

    private func run() {
        let inotify = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        var watchedDirectories: Set<String> = []
        var openForWriting: Set<String> = []
        func watchDirectories() {
            guard inotify >= 0 else { return }
            for directory in Set(files.map(Self.directory)) where !watchedDirectories.contains(directory) {
                let mask = UInt32(IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_MODIFY) | 0x4  // 0x4: IN_ATTR (a macro Glibc does not import)
                if inotify_add_watch(inotify, directory, mask) >= 0 { watchedDirectories.insert(directory) }
            }
        }
        watchDirectories()
        defer { if inotify >= 0 { close(inotify) } }

        var loaded = fingerprint()
        var one: UInt64 = 1
        _ = write(readyFD, &one, 8)
        var candidate: Int?
        var requested = false  // a SIGHUP reload is pending
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while !state.withLock({ $0.stopping }) {
            // Sleep until an inotify event, a pending second look, or the next poll.
            var descriptors = [
                pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0),
                pollfd(fd: inotify, events: Int16(POLLIN), revents: 0),  // ignored by poll when -1
            ]
            _ = poll(&descriptors, 2, candidate == nil && !requested ? pollInterval : 150)
            if descriptors[0].revents != 0 {  // stop() (the loop condition ends it) or requestReload()
                var value: UInt64 = 0
                _ = read(wakeFD, &value, 8)
                if state.withLock({ $0.reloadRequested }) {
                    requested = true
                    candidate = nil  // two fresh looks
                }
                continue
            }
            if inotify >= 0 && descriptors[1].revents & Int16(POLLIN) != 0 {
                let count = buffer.withUnsafeMutableBytes { Glibc.read(inotify, $0.baseAddress, $0.count) }
                noteWriters(buffer, count: count, openForWriting: &openForWriting)
                candidate = candidate ?? loaded  // look again shortly, even if the content seems unchanged
                continue  // let a burst of events settle before looking
            }
            let current = fingerprint()
            guard current != loaded || requested, openForWriting.isEmpty else {
                candidate = nil
                continue
            }
            guard current == candidate else {
                candidate = current  // changed: look once more before trusting it
                continue
            }
            candidate = nil
            let trigger = requested ? "sighup" : "file-change"
            requested = false
            state.withLock { $0.reloadRequested = false }
            if let newFiles = onChange(trigger) {
                state.withLock { $0.files = newFiles }
                watchDirectories()
            }
            loaded = fingerprint()
        }
    }

    /// Tracks files modified and not yet closed (being written in place).
    private func noteWriters(_ buffer: [UInt8], count: Int, openForWriting: inout Set<String>) {
        let names = Set(files.map { String($0.split(separator: "/").last ?? "") })
        var offset = 0
        buffer.withUnsafeBytes { bytes in
            while offset + MemoryLayout<inotify_event>.size <= count {
                let event = bytes.load(fromByteOffset: offset, as: inotify_event.self)
                let nameStart = offset + MemoryLayout<inotify_event>.size
                let nameBytes = bytes[nameStart..<min(nameStart + Int(event.len), count)].prefix { $0 != 0 }
                let name = String(decoding: nameBytes, as: UTF8.self)
                if names.contains(name) {
                    if event.mask & UInt32(IN_MODIFY) != 0 { openForWriting.insert(name) }
                    if event.mask & UInt32(IN_CLOSE_WRITE | IN_DELETE | IN_MOVED_FROM) != 0 { openForWriting.remove(name) }
                }
                offset = nameStart + Int(event.len)
            }
        }
    }

    /// The contents of every watched file (through symlinks), hashed; missing files count too.
    private func fingerprint() -> Int {
        var hasher = Hasher()
        for path in files {
            hasher.combine(path)
            if let contents = Self.contents(path) {
                contents.withUnsafeBytes { hasher.combine(bytes: $0) }
            } else {
                hasher.combine("missing")
            }
        }
        return hasher.finalize()
    }

    static func contents(_ path: String) -> [UInt8]? {
        guard let file = fopen(path, "rb") else { return nil }
        defer { fclose(file) }
        var contents: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = fread(&chunk, 1, chunk.count, file)
            if count <= 0 { return contents }
            contents.append(contentsOf: chunk.prefix(count))
        }
    }

    static func directory(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }
}
