#:property PublishAot=false
#:property EventSourceSupport=true
// tests/targets/many.cs -- a file-based app of the SDK (.NET 10+) for
// gctypes.sh and actions.sh: a million live objects of one class (24 bytes
// each on x64: header, MethodTable, one long), then waits. (A file-based app
// is built for AOT by default, without EventSource: no counters, no
// threshold to cross.)
using System;
using System.Threading;
var keep = new Node[1_000_000];
for (int i = 0; i < keep.Length; i++) keep[i] = new Node { Value = i };
GC.Collect(2, GCCollectionMode.Forced, true, true);
Console.WriteLine($"READY {Environment.ProcessId}");
Thread.Sleep(Timeout.Infinite);
GC.KeepAlive(keep);
sealed class Node { public long Value; }
