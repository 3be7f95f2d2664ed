// Package pages gives the kernel back the resident pages of the running
// executable that only starting up needed (ReleaseStartupPages). Both
// commands, clusterdns and nodeproxy, call it once their first full view of
// the cluster is built, together with debug.FreeOSMemory; and a
// SettleTrimmer that returns the garbage of later changes to the OS once
// they settle.
package pages
