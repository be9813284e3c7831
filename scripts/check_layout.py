#!/usr/bin/env python3
"""Checks the source layout: no import cycles between the modules (files) of a crate, and no
file under crates/*/src over 600 lines unless its first line says why ("long: <reason>").

Run: python3 scripts/check_layout.py   (CI runs it; exit 1 lists what is wrong)

A module depends on another when it names it through `crate::` or `super::` paths, or when a
`mod.rs`/`lib.rs`/`main.rs` names a child module's items. Test modules are not counted.
"""
import os
import re
import sys
def modpath(root, f):
    rel=os.path.relpath(f, root)[:-3]
    parts=rel.split('/')
    if parts[-1] in ('mod','lib','main'): parts=parts[:-1]
    return parts
os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
problems = []
for crate in sorted(os.listdir('crates')):
    root=f'crates/{crate}/src'
    files={}
    for d,_,fs in os.walk(root):
        for f in fs:
            if f.endswith('.rs'): files[tuple(modpath(root, os.path.join(d,f)))]=os.path.join(d,f)
    edges={k:set() for k in files}
    for m,f in files.items():
        src=open(f).read()
        src=src.split('#[cfg(test)]')[0]
        for u in re.findall(r'\b(crate|super)((?:::\w+)+)', src):
            base=list(m) if files[m].endswith(('mod.rs','lib.rs','main.rs')) else list(m[:-1])
            path=u[1].split('::')[1:]
            if u[0]=='crate': cur=[]
            else:
                cur=base[:]
                # super:: relative to module m: parent of m
                cur=list(m[:-1])
                while path and path[0]=='super': cur=cur[:-1]; path=path[1:]
            # find longest prefix that is a file module
            target=None
            for i in range(len(path),-1,-1):
                cand=tuple(cur+path[:i])
                if cand in files: target=cand; break
            if target and target!=m: edges[m].add(target)
        if files[m].endswith(('mod.rs','lib.rs','main.rs')):
            for k in files:
                if len(k)==len(m)+1 and k[:-1]==m and re.search(r'(?<![:\w])%s::'%k[-1], src.replace('mod %s;'%k[-1],'')):
                    edges[m].add(k)
    # find cycles (SCCs)
    idx={};low={};st=[];on=set();res=[];c=[0]
    def sc(v):
        idx[v]=low[v]=c[0];c[0]+=1;st.append(v);on.add(v)
        for w in edges[v]:
            if w not in idx: sc(w);low[v]=min(low[v],low[w])
            elif w in on: low[v]=min(low[v],idx[w])
        if low[v]==idx[v]:
            comp=[]
            while True:
                w=st.pop();on.discard(w);comp.append(w)
                if w==v:break
            if len(comp)>1: res.append(comp)
    sys.setrecursionlimit(10000)
    for v in files:
        if v not in idx: sc(v)
    for comp in res:
        problems.append(f"import cycle in {crate}: " + " <-> ".join(sorted('/'.join(x) or '(root)' for x in comp)))
    for f in files.values():
        with open(f) as fh:
            lines = fh.read().split('\n')
        if len(lines) > 600 and 'long:' not in lines[0]:
            problems.append(f"{f}: {len(lines)} lines; split it, or say why on its first line (//! long: …)")

for p in problems:
    print(p)
if problems:
    sys.exit(1)
print("layout: no import cycles, no unexplained long file")
