package ws

// SocketsWithin is socketsWithin for the external tests.
var SocketsWithin = socketsWithin
