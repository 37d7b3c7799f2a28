// The HTTP/1.1 module: see RequestHead.swift (work in progress).
