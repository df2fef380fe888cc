/** This server's version, and the memcached version whose protocol and `stats` it matches. */
export const SERVER_NAME = 'memcached-ts';
export const SERVER_VERSION = '0.1.0';
export const MEMCACHED_COMPAT_VERSION = '1.6.45';
