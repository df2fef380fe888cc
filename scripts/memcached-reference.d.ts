/** Types of scripts/memcached-reference.js (the reference memcached's location). */
export declare const REFERENCE_VERSION: string;
export declare function cacheDir(): string;
export declare function referenceDir(): string;
export declare function referenceBin(): string;
