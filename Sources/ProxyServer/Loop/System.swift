import CLinux
import Glibc

/// Facts about the machine the server sizes itself by.
public enum System {
    /// CPUs this process may use: the affinity mask, further limited by a cgroup CPU quota
    /// (cgroup v2 `cpu.max`, v1 `cpu.cfs_quota_us`/`cpu.cfs_period_us`) as Kubernetes sets it.
    public static var coreCount: Int {
        let affinity = Int(clinux_affinity_cpu_count())
        let cores = affinity > 0 ? affinity : max(Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))), 1)
        guard let quota = cgroupQuota() else { return cores }
        return max(1, min(cores, Int((quota).rounded(.up))))
    }

    /// CPUs allowed by the cgroup quota, or nil when unlimited or unknown.
    static func cgroupQuota() -> Double? {
        if let line = readFirstLine("/sys/fs/cgroup/cpu.max") {
            let fields = line.split(separator: " ")
            if fields.count == 2, let quota = Double(fields[0]), let period = Double(fields[1]), period > 0 {
                return quota / period
            }
            return nil  // "max 100000": unlimited
        }
        if let quota = readFirstLine("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").flatMap({ Double($0) }),
            let period = readFirstLine("/sys/fs/cgroup/cpu/cpu.cfs_period_us").flatMap({ Double($0) }),
            quota > 0, period > 0
        {
            return quota / period
        }
        return nil
    }

    static func readFirstLine(_ path: String) -> String? {
        guard let file = fopen(path, "r") else { return nil }
        defer { fclose(file) }
        var buffer = [CChar](repeating: 0, count: 256)
        guard fgets(&buffer, Int32(buffer.count), file) != nil else { return nil }
        let line = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return line.trimmingCharacters(in: "\n ")
    }
}

extension String {
    func trimmingCharacters(in set: String) -> String {
        var scalars = Substring(self).unicodeScalars
        while let first = scalars.first, set.unicodeScalars.contains(first) { scalars.removeFirst() }
        while let last = scalars.last, set.unicodeScalars.contains(last) { scalars.removeLast() }
        return String(scalars)
    }
}
